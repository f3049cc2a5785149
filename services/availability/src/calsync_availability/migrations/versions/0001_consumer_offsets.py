"""Consumer offsets stored with the projections they produced.

Revision ID: availability_0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "availability_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Frozen copy of the DDL this revision shipped with (the table now belongs to the plumbing
    # chain, which creates it IF NOT EXISTS as well).
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS kafka_consumer_offsets (
            group_id    text        NOT NULL,
            topic       text        NOT NULL,
            partition   integer     NOT NULL,
            next_offset bigint      NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (group_id, topic, partition)
        )
        """
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
