"""Creating, updating and deleting events with Outlook's rules (same path for Graph and control).

Decision (transactionId): Microsoft documents that transactionId exists "to avoid redundant POST
operations in case of client retries" but not what a retried POST returns. The emulator answers
``201 Created`` with the event created by the first POST (unchanged, not duplicated), scoped to
the mailbox; once that event is deleted the transactionId may be used again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time

from msgraph_emulator.changes import ChangeType
from msgraph_emulator.mailbox import ids, recurrence
from msgraph_emulator.mailbox.errors import access_denied, invalid_request
from msgraph_emulator.mailbox.instances import start_key
from msgraph_emulator.mailbox.model import Calendar, Event, Instance
from msgraph_emulator.mailbox.parse import EventInput
from msgraph_emulator.mailbox.store import Mailbox
from msgraph_emulator.mailbox.timezones import parse_local, resolve_zone

Emit = Callable[[str, str, ChangeType], None]


def _now() -> datetime:
    return datetime.now(UTC)


def _check_writable(calendar: Calendar, control: bool) -> None:
    if calendar.access == "read" and not control:
        raise access_denied()


def _apply_times(event: Event, inp: EventInput) -> None:
    """Apply start/end/isAllDay from ``inp`` and enforce Outlook's rules on the result."""
    if inp.start is not None:
        event.start_tz = inp.start[1]
        event.start = parse_local(inp.start[0], resolve_zone(inp.start[1]))
    if inp.end is not None:
        event.end_tz = inp.end[1]
        event.end = parse_local(inp.end[0], resolve_zone(inp.end[1]))
    if inp.is_all_day is not None:
        event.is_all_day = inp.is_all_day
    if event.is_all_day:
        same_zone = resolve_zone(event.start_tz) == resolve_zone(event.end_tz)
        midnight = event.start.time() == time(0) and event.end.time() == time(0)
        if not (same_zone and midnight) or event.end <= event.start:
            raise invalid_request(
                "Your request can't be completed. If isAllDay is true, the start and end times "
                "must be set to midnight and be in the same time zone."
            )
    if event.end_utc < event.start_utc:
        raise invalid_request(
            "Your request can't be completed. The end time of the event must be later than "
            "its start time."
        )


def _touch(event: Event) -> None:
    event.change_key = ids.new_change_key()
    event.last_modified = _now()


def create_event(
    mb: Mailbox, calendar: Calendar, inp: EventInput, emit: Emit, *, control: bool = False
) -> tuple[Event, bool]:
    """Create an event; ``(event, False)`` when a retried transactionId found the original."""
    _check_writable(calendar, control)
    if inp.transaction_id and inp.transaction_id in mb.transactions:
        return mb.events[mb.transactions[inp.transaction_id]], False
    if inp.start is None or inp.end is None:
        raise invalid_request("Your request can't be completed. An event needs a start and end.")
    now = _now()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    event = Event(
        id=ids.new_id(),
        calendar_id=calendar.id,
        ical_uid=ids.new_ical_uid(),
        change_key=ids.new_change_key(),
        created=now,
        last_modified=now,
        start=epoch,
        end=epoch,
        start_tz="UTC",
        end_tz="UTC",
        props=dict(inp.props),
        transaction_id=inp.transaction_id,
        extended=dict(inp.extended),
    )
    _apply_times(event, inp)
    if inp.recurrence is not None:
        event.recurrence = recurrence.normalize(inp.recurrence, event.start_tz)
    mb.put(event)
    mb.record(calendar.id, event.id)
    emit(calendar.id, event.id, "created")
    return event, True


def _update_stored(event: Event, inp: EventInput) -> None:
    if inp.transaction_id is not None and inp.transaction_id != event.transaction_id:
        raise invalid_request("The transactionId of an event can't be changed.")
    times_changed = inp.start is not None or inp.end is not None or inp.is_all_day is not None
    _apply_times(event, inp)
    event.props.update(inp.props)
    event.extended.update(inp.extended)
    if inp.recurrence_set:
        event.recurrence = (
            None if inp.recurrence is None else recurrence.normalize(inp.recurrence, event.start_tz)
        )
    if event.original_start is None and (times_changed or inp.recurrence_set):
        # Outlook drops a series' exceptions when its time or pattern changes.
        event.exceptions.clear()
        event.cancelled.clear()
    _touch(event)


def _exception_for(master: Event, instance: Instance) -> Event:
    assert instance.original_start is not None
    key = start_key(instance.original_start)
    existing = master.exceptions.get(key)
    if existing is not None:
        return existing
    now = _now()
    exc = Event(
        id=instance.id,
        calendar_id=master.calendar_id,
        ical_uid=ids.occurrence_ical_uid(master.ical_uid, instance.original_start),
        change_key=master.change_key,
        created=now,
        last_modified=now,
        start=instance.start,
        end=instance.end,
        start_tz=master.start_tz,
        end_tz=master.end_tz,
        is_all_day=master.is_all_day,
        series_master_id=master.id,
        original_start=instance.original_start,
    )
    master.exceptions[key] = exc
    return exc


def update_event(
    mb: Mailbox, item_id: str, inp: EventInput, emit: Emit, *, control: bool = False
) -> Event:
    """PATCH a single instance, series master, occurrence (becomes an exception) or exception."""
    found = mb.locate(item_id)
    _check_writable(mb.calendar(found.event.calendar_id), control)
    target = found.event
    if found.instance is not None:
        if inp.recurrence_set:
            raise invalid_request("The recurrence of an occurrence can't be changed.")
        target = _exception_for(found.event, found.instance)
    _update_stored(target, inp)
    if target is not found.event:
        _touch(found.event)
    mb.record(found.event.calendar_id, found.event.id)
    emit(found.event.calendar_id, found.event.id, "updated")
    return target


def delete_event(mb: Mailbox, item_id: str, emit: Emit, *, control: bool = False) -> None:
    """DELETE an item; deleting an occurrence or exception cancels that one occurrence."""
    found = mb.locate(item_id)
    event = found.event
    _check_writable(mb.calendar(event.calendar_id), control)
    if found.instance is not None:
        assert found.instance.original_start is not None
        key = start_key(found.instance.original_start)
        event.exceptions.pop(key, None)
        event.cancelled.add(key)
        _touch(event)
        mb.record(event.calendar_id, event.id)
        emit(event.calendar_id, event.id, "updated")
        return
    mb.remove(event)
    mb.record(event.calendar_id, event.id)
    emit(event.calendar_id, event.id, "deleted")
