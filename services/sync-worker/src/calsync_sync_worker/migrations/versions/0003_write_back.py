"""Write-back: each booking's wanted state, the Graph event that holds it, and what was written.

Revision ID: sync_worker_0003
Revises: sync_worker_0002
Create Date: 2026-12-02
"""

from alembic import op

revision = "sync_worker_0003"
down_revision = "sync_worker_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE booking_events (
            booking_id      uuid        PRIMARY KEY,
            sub_account_id  text        NOT NULL,
            user_id         text        NOT NULL,
            -- what the booking wants (the newest version of calsync.bookings.v1)
            version         integer     NOT NULL,
            cancelled       boolean     NOT NULL,
            starts_at       timestamptz,
            ends_at         timestamptz,
            title           text,
            -- where it is (the event calsync created: ImmutableId, so it survives moves)
            connection_id   uuid,
            calendar_id     text,
            event_id        text,
            -- what calsync last wrote there, and when (an echo read before then is outdated)
            written_version integer,
            written_start   timestamptz,
            written_end     timestamptz,
            written_at      timestamptz,
            -- the last outcome published, so each version's outcome is published once
            outcome         text,
            outcome_version integer,
            outcome_reason  text,
            -- the work: due when written_version lags, leased by one replica at a time
            due_at          timestamptz,
            failures        integer     NOT NULL DEFAULT 0,
            lease_owner     text,
            lease_until     timestamptz,
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX booking_events_due ON booking_events (due_at) WHERE due_at IS NOT NULL")
    op.execute("CREATE INDEX booking_events_member ON booking_events (sub_account_id, user_id)")
    op.execute(
        "CREATE INDEX booking_events_event ON booking_events (connection_id, event_id)"
        " WHERE event_id IS NOT NULL"
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
