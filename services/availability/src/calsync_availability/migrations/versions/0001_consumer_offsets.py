"""Consumer offsets stored with the projections they produced.

Revision ID: availability_0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

from calsync_common.kafka.offsets import OFFSETS_DDL

revision = "availability_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(OFFSETS_DDL)


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
