"""Bookings (exclusion-constrained per member), idempotency keys and write-back outcomes.

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
    # The core every part of the service relies on (the projection's conflict detection reads it):
    # booking_id .. updated_at and the exclusion constraint. The rest is the booking write path's.
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
            -- The booking as the API shows it: one row per member holding the time (one for
            -- personal and round robin, where group_id = booking_id; one per member for
            -- collective). Every row of a group changes together, at the same version.
            group_id            uuid        NOT NULL,
            -- Who made the last change: the API, or the person in Outlook (two-way sync).
            changed_by          text        NOT NULL DEFAULT 'api'
                                CHECK (changed_by IN ('api', 'outlook')),
            -- What became of the last change made in Outlook (two-way), as JSON.
            outlook_change      jsonb,
            -- The hard guarantee: no two confirmed bookings of one member overlap.
            CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
                sub_account_id WITH =, user_id WITH =, during WITH &&
            ) WHERE (status = 'confirmed')
        )
        """
    )
    op.execute("CREATE INDEX bookings_group ON bookings (sub_account_id, group_id)")
    # Round robin: the member the calendar's latest booking went to.
    op.execute(
        "CREATE INDEX bookings_calendar_created ON bookings"
        " (sub_account_id, booking_calendar_id, created_at)"
    )

    # A POST's first answer, kept so that a retry with the same key gets it byte for byte.
    # ``response_status`` is NULL only inside the transaction that is answering (the row is
    # inserted first, so a concurrent retry waits on it). Retention: rows older than
    # ``AvailabilitySettings.idempotency_retention_s`` (24 h by default) count as absent and are
    # deleted by the service's sweeper (index on created_at).
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            sub_account_id  text        NOT NULL,
            key             text        NOT NULL,
            request_hash    bytea       NOT NULL,
            response_status integer,
            response_body   bytea,
            created_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (sub_account_id, key)
        )
        """
    )
    op.execute("CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)")

    # The latest write-back outcome of each booking version (calsync.booking-writebacks.v1).
    op.execute(
        """
        CREATE TABLE booking_writebacks (
            booking_id      uuid        NOT NULL,
            booking_version integer     NOT NULL CHECK (booking_version >= 1),
            outcome         text        NOT NULL
                            CHECK (outcome IN ('written', 'removed', 'failed', 'skipped')),
            reason          text,
            will_retry      boolean     NOT NULL DEFAULT false,
            connection_id   uuid,
            calendar_id     text,
            event_id        text,
            occurred_at     timestamptz NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (booking_id, booking_version)
        )
        """
    )
    # Conflicts (blocking Outlook time over a booking) live in booking_conflicts (0002).


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
