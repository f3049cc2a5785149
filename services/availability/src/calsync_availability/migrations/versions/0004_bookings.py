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
    op.execute("SELECT 1")  # filled in by the issue 9 work


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
