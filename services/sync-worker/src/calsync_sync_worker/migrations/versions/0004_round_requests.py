"""A round asked for while one runs is not lost: when it was asked for, and when the running
round was claimed.

Revision ID: sync_worker_0004
Revises: sync_worker_0003
Create Date: 2026-12-02
"""

from alembic import op

revision = "sync_worker_0004"
down_revision = "sync_worker_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE calendars ADD COLUMN round_requested_at timestamptz,"
        " ADD COLUMN round_claimed_at timestamptz"
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
