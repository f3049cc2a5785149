"""Connections, encrypted token caches and in-flight OAuth flows, calendar freshness.

Revision ID: connector_0002
Revises: connector_0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "connector_0002"
down_revision = "connector_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE connections (
            id             uuid        PRIMARY KEY,
            sub_account_id text        NOT NULL,
            user_id        text        NOT NULL,
            tenant_id      text        NOT NULL,
            object_id      text        NOT NULL,
            email          text        NOT NULL,
            display_name   text,
            time_zone      text,
            status         text        NOT NULL
                CHECK (status IN ('active', 'reauth_required', 'disconnected')),
            calendars      jsonb       NOT NULL,
            settings       jsonb       NOT NULL,
            warnings       jsonb       NOT NULL DEFAULT '[]',
            version        integer     NOT NULL,
            created_at     timestamptz NOT NULL,
            updated_at     timestamptz NOT NULL
        )
        """
    )
    # The product's limits, enforced by the database so that racing sign-ins have one winner:
    # one Outlook integration per user per sub-account, one place per Microsoft account.
    op.execute(
        "CREATE UNIQUE INDEX connections_one_per_user ON connections (sub_account_id, user_id)"
        " WHERE status <> 'disconnected'"
    )
    op.execute(
        "CREATE UNIQUE INDEX connections_one_per_account ON connections (tenant_id, object_id)"
        " WHERE status <> 'disconnected'"
    )
    op.execute("CREATE INDEX connections_by_user ON connections (sub_account_id, user_id)")
    op.execute(
        """
        CREATE TABLE token_caches (
            connection_id uuid        PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
            key_id        text        NOT NULL,
            nonce         bytea       NOT NULL,
            ciphertext    bytea       NOT NULL,
            updated_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE oauth_flows (
            state          text        PRIMARY KEY,
            sub_account_id text        NOT NULL,
            user_id        text        NOT NULL,
            return_url     text        NOT NULL,
            key_id         text        NOT NULL,
            nonce          bytea       NOT NULL,
            ciphertext     bytea       NOT NULL,
            created_at     timestamptz NOT NULL DEFAULT now(),
            expires_at     timestamptz NOT NULL,
            consumed_at    timestamptz,
            updated_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX oauth_flows_expiry ON oauth_flows (expires_at)")
    op.execute(
        """
        CREATE TABLE calendar_freshness (
            connection_id  uuid        NOT NULL,
            calendar_id    text        NOT NULL,
            status         text        NOT NULL,
            subscription   text        NOT NULL,
            last_synced_at timestamptz,
            last_error     text,
            changed_at     timestamptz NOT NULL,
            PRIMARY KEY (connection_id, calendar_id)
        )
        """
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
