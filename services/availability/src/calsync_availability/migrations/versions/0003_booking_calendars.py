"""Booking calendars, their members and working hours.

Revision ID: availability_0003
Revises: availability_0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "availability_0003"
down_revision = "availability_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The rules the domain checks are repeated here where SQL can state them, as a backstop.
    op.execute(
        """
        CREATE TABLE booking_calendars (
            calendar_id       uuid        PRIMARY KEY,
            sub_account_id    text        NOT NULL,
            name              text        NOT NULL,
            type              text        NOT NULL CHECK (type IN (
                                  'personal', 'round_robin', 'collective', 'class', 'service',
                                  'event')),
            slot_length       interval    NOT NULL CHECK (slot_length > interval '0'),
            buffer_before     interval    NOT NULL CHECK (buffer_before >= interval '0'),
            buffer_after      interval    NOT NULL CHECK (buffer_after >= interval '0'),
            minimum_notice    interval    NOT NULL CHECK (minimum_notice >= interval '0'),
            outlook_conflicts boolean     NOT NULL,
            on_stale          text        NOT NULL CHECK (on_stale IN ('fail_closed', 'proceed')),
            stale_after       interval    NOT NULL CHECK (stale_after > interval '0'),
            version           integer     NOT NULL CHECK (version >= 1),
            created_at        timestamptz NOT NULL,
            updated_at        timestamptz NOT NULL,
            -- The product's rule: the Outlook integration does not work with event calendars.
            CONSTRAINT event_calendars_without_outlook
                CHECK (type <> 'event' OR NOT outlook_conflicts)
        )
        """
    )
    # The list endpoint's order (oldest first) and keyset pagination.
    op.execute(
        "CREATE INDEX booking_calendars_listing"
        " ON booking_calendars (sub_account_id, created_at, calendar_id)"
    )
    # One row per member, in the calendar's order; working hours as a JSON list of
    # [weekday (0 = Monday), start minute, end minute] in the member's own time zone.
    op.execute(
        """
        CREATE TABLE booking_calendar_members (
            calendar_id    uuid     NOT NULL
                           REFERENCES booking_calendars (calendar_id) ON DELETE CASCADE,
            position       smallint NOT NULL CHECK (position >= 0),
            sub_account_id text     NOT NULL,
            user_id        text     NOT NULL,
            time_zone      text     NOT NULL,
            working_hours  jsonb    NOT NULL CHECK (jsonb_typeof(working_hours) = 'array'),
            PRIMARY KEY (calendar_id, position),
            UNIQUE (calendar_id, user_id)
        )
        """
    )
    # The calendars a member belongs to (the list's user_id filter).
    op.execute(
        "CREATE INDEX booking_calendar_members_user"
        " ON booking_calendar_members (sub_account_id, user_id)"
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migrations")
