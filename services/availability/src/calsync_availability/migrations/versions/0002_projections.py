"""Projections of the connections, calendar-events and sync-status topics; booking conflicts.

Revision ID: availability_0002
Revises: availability_0001
Create Date: 2026-12-01

Every ``outlook_*`` table is rebuilt from Kafka alone: replaying the topics into an empty database
gives the same rows (``tests/test_replay.py``). ``booking_conflicts`` is not a pure projection
(it also depends on ``bookings``, created later in the chain, hence no foreign key).
"""

from alembic import op

revision = "availability_0002"
down_revision = "availability_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    # The latest snapshot of each connection (calsync.connections.v1, compacted).
    op.execute(
        """
        CREATE TABLE outlook_connections (
            connection_id         uuid        PRIMARY KEY,
            version               bigint      NOT NULL,
            sub_account_id        text        NOT NULL,
            user_id               text        NOT NULL,
            status                text        NOT NULL,
            sync_preference       text        NOT NULL,
            linked_calendar_id    text,
            conflict_calendar_ids text[]      NOT NULL,
            blocking_show_as      text[]      NOT NULL,
            time_zone             text,
            changed_at            timestamptz NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX outlook_connections_member ON outlook_connections (sub_account_id, user_id)"
    )
    # Connections erased by a tombstone: their late events and statuses are not kept.
    op.execute("CREATE TABLE outlook_forgotten_connections (connection_id uuid PRIMARY KEY)")

    # One row per event instance; the connection is joined at query time (its snapshot may come
    # after its events: another topic).
    op.execute(
        """
        CREATE TABLE outlook_events (
            connection_id uuid        NOT NULL,
            calendar_id   text        NOT NULL,
            event_id      text        NOT NULL,
            during        tstzrange   NOT NULL,
            show_as       text        NOT NULL,
            is_all_day    boolean     NOT NULL,
            -- Set on calsync's own write-back echoes: kept, but they never block.
            booking_id    uuid,
            ce_sequence   bigint      NOT NULL,
            PRIMARY KEY (connection_id, calendar_id, event_id)
        )
        """
    )
    # The busy query: one connection's blocking candidates over a window. Free events and echoes
    # are never busy, so they stay out of the GiST index (cheaper writes, smaller index).
    op.execute(
        "CREATE INDEX outlook_events_busy ON outlook_events USING gist (connection_id, during)"
        " WHERE show_as <> 'free' AND booking_id IS NULL"
    )
    # The newest ce_sequence applied per calendar: an older event (a late re-send, an upsert after
    # its removal) changes nothing, without keeping a row per removed event.
    op.execute(
        """
        CREATE TABLE outlook_calendar_sequences (
            connection_id uuid   NOT NULL,
            calendar_id   text   NOT NULL,
            last_sequence bigint NOT NULL,
            PRIMARY KEY (connection_id, calendar_id)
        )
        """
    )
    # A resync in progress per calendar: its window and what its pages listed so far.
    op.execute(
        """
        CREATE TABLE outlook_resyncs (
            connection_id uuid      NOT NULL,
            calendar_id   text      NOT NULL,
            resync_id     uuid      NOT NULL,
            time_window   tstzrange NOT NULL,
            next_page     integer   NOT NULL,
            listed        integer   NOT NULL,
            -- A page came out of order (one was missed): the resync removes nothing.
            broken        boolean   NOT NULL,
            PRIMARY KEY (connection_id, calendar_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE outlook_resync_ids (
            connection_id uuid NOT NULL,
            calendar_id   text NOT NULL,
            event_id      text NOT NULL,
            PRIMARY KEY (connection_id, calendar_id, event_id)
        )
        """
    )
    # Freshness of each synced calendar (calsync.sync-status.v1, compacted).
    op.execute(
        """
        CREATE TABLE outlook_calendar_freshness (
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
    # Blocking Outlook time found over a confirmed booking of the same member. ``during`` is the
    # overlap; a conflict whose event moves away or goes is kept with ``resolved_at`` set.
    op.execute(
        """
        CREATE TABLE booking_conflicts (
            booking_id      uuid        NOT NULL,
            connection_id   uuid        NOT NULL,
            calendar_id     text        NOT NULL,
            event_id        text        NOT NULL,
            show_as         text        NOT NULL,
            during          tstzrange   NOT NULL,
            booking_version integer     NOT NULL,
            detected_at     timestamptz NOT NULL DEFAULT now(),
            resolved_at     timestamptz,
            PRIMARY KEY (booking_id, connection_id, calendar_id, event_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX booking_conflicts_open_by_event ON booking_conflicts"
        " (connection_id, calendar_id, event_id) WHERE resolved_at IS NULL"
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
