"""Bookings (exclusion-constrained per member), idempotency keys and conflicts.

Revision ID: availability_0004
Revises: availability_0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "availability_0004"
down_revision = "availability_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The core every part of the service relies on (the projection's conflict detection reads it);
    # the bookings work adds its columns, idempotency keys and the rest below.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute(
        """
        CREATE TABLE bookings (
            booking_id          uuid        PRIMARY KEY,
            sub_account_id      text        NOT NULL,
            booking_calendar_id text        NOT NULL,
            user_id             text        NOT NULL,
            during              tstzrange   NOT NULL CHECK (NOT isempty(during)),
            status              text        NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
            version             integer     NOT NULL CHECK (version >= 1),
            title               text        NOT NULL,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now(),
            -- The hard guarantee: no two confirmed bookings of one member overlap.
            CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
                sub_account_id WITH =, user_id WITH =, during WITH &&
            ) WHERE (status = 'confirmed')
        )
        """
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
