"""Transactional outbox, per-key sequences, and the topic incarnation witness of each offset.

Revision ID: plumbing_0002
Revises: plumbing_0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "plumbing_0002"
down_revision = "plumbing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The fingerprint of the last applied record: proves on assignment that the stored offset
    # still belongs to the same incarnation of the topic.
    op.execute("ALTER TABLE kafka_consumer_offsets ADD COLUMN witness text")
    op.execute(
        """
        CREATE TABLE kafka_consumer_offset_resets (
            id            bigserial   PRIMARY KEY,
            group_id      text        NOT NULL,
            topic         text        NOT NULL,
            partition     integer     NOT NULL,
            reason        text        NOT NULL,
            stored_offset bigint,
            new_offset    bigint      NOT NULL,
            reset_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE kafka_consumer_sequences (
            group_id      text   NOT NULL,
            topic         text   NOT NULL,
            source        text   NOT NULL,
            key           text   NOT NULL,
            last_sequence bigint NOT NULL,
            PRIMARY KEY (group_id, topic, source, key)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE outbox_sequences (
            topic         text   NOT NULL,
            key           text   NOT NULL,
            last_sequence bigint NOT NULL,
            PRIMARY KEY (topic, key)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE outbox (
            id           bigserial   PRIMARY KEY,
            topic        text        NOT NULL,
            key          text        NOT NULL,
            sequence     bigint      NOT NULL,
            bucket       smallint    NOT NULL,
            event_id     text        NOT NULL,
            headers      jsonb       NOT NULL,
            value        bytea,
            created_at   timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz,
            UNIQUE (topic, key, sequence)
        )
        """
    )
    op.execute("CREATE INDEX outbox_pending ON outbox (bucket, id) WHERE published_at IS NULL")
    op.execute(
        "CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL"
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
