"""What the sync-worker knows: connections (from Kafka), synced calendars, subscriptions.

Revision ID: sync_worker_0002
Revises: sync_worker_0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "sync_worker_0002"
down_revision = "sync_worker_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The latest snapshot of each connection, as calsync.connections.v1 carries it.
    op.execute(
        """
        CREATE TABLE connections (
            connection_id         uuid        PRIMARY KEY,
            version               integer     NOT NULL,
            sub_account_id        text        NOT NULL,
            user_id               text        NOT NULL,
            tenant_id             text        NOT NULL,
            object_id             text        NOT NULL,
            status                text        NOT NULL,
            linked_calendar_id    text,
            conflict_calendar_ids text[]      NOT NULL,
            sync_preference       text        NOT NULL,
            time_zone             text,
            changed_at            timestamptz NOT NULL
        )
        """
    )
    # One row per calendar calsync syncs (or synced: ``wanted`` false until it is let go of).
    op.execute(
        """
        CREATE TABLE calendars (
            connection_id  uuid        NOT NULL,
            calendar_id    text        NOT NULL,
            wanted         boolean     NOT NULL,
            paused         boolean     NOT NULL DEFAULT false,
            delta_link     text,
            window_start   timestamptz,
            window_end     timestamptz,
            last_synced_at timestamptz,
            last_error     text,
            next_round_at  timestamptz NOT NULL DEFAULT now(),
            -- delta rounds: leased by one replica at a time, retried with backoff
            round_failures integer     NOT NULL DEFAULT 0,
            round_lease_owner text,
            round_lease_until timestamptz,
            -- subscription upkeep: leased by one replica at a time, retried with backoff
            subscription_due_at  timestamptz NOT NULL DEFAULT now(),
            subscription_failures integer    NOT NULL DEFAULT 0,
            subscription_error   text,
            lease_owner    text,
            lease_until    timestamptz,
            updated_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (connection_id, calendar_id)
        )
        """
    )
    op.execute("CREATE INDEX calendars_due ON calendars (next_round_at) WHERE wanted")
    op.execute(
        """
        CREATE TABLE subscriptions (
            subscription_id   text        PRIMARY KEY,
            connection_id     uuid        NOT NULL,
            calendar_id       text        NOT NULL,
            client_state_hash bytea       NOT NULL,
            expires_at        timestamptz NOT NULL,
            created_at        timestamptz NOT NULL DEFAULT now(),
            renewed_at        timestamptz
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX subscriptions_one_per_calendar"
        " ON subscriptions (connection_id, calendar_id)"
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
