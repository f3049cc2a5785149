"""Consumer offsets stored with the projections they produced.

Revision ID: plumbing_0001
Revises:
Create Date: 2026-12-01
"""

from alembic import op

revision = "plumbing_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: databases migrated before this chain existed got the table from their
    # service's first revision.
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
