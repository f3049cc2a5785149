"""The outbox becomes a queue: a row is deleted once the broker acked it.

Sent rows used to stay (``published_at`` set, purged after 24 h) and the pending rows were found
through ``outbox_pending (bucket, id) WHERE published_at IS NULL``. Marking a row sent left its
entry in that index until VACUUM, and the relay's bitmap scans never mark entries dead, so every
read stepped over all the rows sent since the last vacuum: 0.5 ms after a 10 s run at 100
notifications/s, 3.7 to 6.4 ms with 50,000 of them, growing with the hours. Kafka keeps what was
sent; the table now holds only what is still to send, the relay reads it per bucket through
``(bucket, id)``, and autovacuum visits the table after every few thousand deletions rather
than after a fifth of a large table.

Revision ID: plumbing_0003
Revises: plumbing_0002
Create Date: 2026-12-02
"""

from alembic import op

revision = "plumbing_0003"
down_revision = "plumbing_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    op.execute("DROP INDEX outbox_published")
    op.execute("DROP INDEX outbox_pending")
    op.execute("ALTER TABLE outbox DROP COLUMN published_at")
    op.execute("CREATE INDEX outbox_by_bucket ON outbox (bucket, id)")
    op.execute(
        "ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0,"
        " autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_insert_scale_factor = 0,"
        " autovacuum_vacuum_insert_threshold = 5000)"
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
