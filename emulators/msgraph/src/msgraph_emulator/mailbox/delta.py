"""calendarView delta: sync states, rounds, pages and opaque tokens (no HTTP here).

A first round snapshots every instance in the window; later rounds read the mailbox change log
after the token's sequence number and report, per changed stored event, its current instances in
the window plus ``@removed`` for instances the client held that are gone (except cancelled
occurrences under the ``cancelledOccurrencesInDelta: "omitted"`` behaviour: no item). A page
holds all items of a series even when that exceeds the page size (Graph does not split a series
across pages). Sync states live in a bounded LRU cache, like Outlook's delta token cache: an
evicted or expired state answers 410.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from msgraph_emulator.mailbox import ids
from msgraph_emulator.mailbox.errors import MailboxError
from msgraph_emulator.mailbox.instances import event_in_window, start_key
from msgraph_emulator.mailbox.model import Event, Instance
from msgraph_emulator.mailbox.store import Mailbox


@dataclass(frozen=True)
class Removed:
    id: str
    group: str = ""  # the stored event (series master or single) it belonged to


DeltaItem = Instance | Removed


def group_of(item: DeltaItem) -> str:
    """Items of one series share a group: a page never splits it."""
    if isinstance(item, Removed):
        return item.group or item.id
    return item.event_id


def contiguous(items: list[DeltaItem]) -> list[DeltaItem]:
    """Gather each series' items at the place of its first one (other order kept)."""
    groups: dict[str, list[DeltaItem]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    return [item for members in groups.values() for item in members]


def is_cancelled(master: Event, item_id: str) -> bool:
    """Whether ``item_id`` is an occurrence of ``master`` that has been cancelled."""
    parsed = ids.parse_occurrence_id(item_id)
    return (
        parsed is not None and parsed[0] == master.id and start_key(parsed[1]) in master.cancelled
    )


@dataclass
class SyncState:
    id: str
    user_id: str
    calendar_id: str
    start: datetime
    end: datetime
    known: dict[str, set[str]] = field(default_factory=dict)
    rounds: OrderedDict[str, tuple[list[DeltaItem], int]] = field(default_factory=OrderedDict)
    expired: bool = False


@dataclass(frozen=True)
class Token:
    state_id: str
    start: datetime
    end: datetime
    round_id: str = ""  # skip token: which round and where in it
    offset: int = 0
    seq: int = -1  # delta token: change-log sequence the client is synced to

    def encode(self) -> str:
        data = [self.state_id, _ts(self.start), _ts(self.end), self.round_id, self.offset, self.seq]
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Token:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            sid, a, b, rid, off, seq = json.loads(raw)
            return cls(str(sid), _dt(a), _dt(b), str(rid), int(off), int(seq))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise MailboxError(400, "BadRequest", "The delta or skip token is invalid.") from exc


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def _dt(value: int) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def sync_state_not_found() -> MailboxError:
    return MailboxError(
        410,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be "
        "synchronized again.",
    )


@dataclass
class Page:
    items: list[DeltaItem]
    next_token: Token | None  # @odata.nextLink ($skiptoken) when set
    delta_token: Token | None  # @odata.deltaLink ($deltatoken) on the last page


class DeltaStore:
    """Every live sync state, least recently used first."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, SyncState] = OrderedDict()

    def reset(self) -> None:
        self._states.clear()

    def expire(self, user_id: str, calendar_id: str | None = None) -> int:
        hit = [
            s
            for s in self._states.values()
            if s.user_id == user_id and calendar_id in (None, s.calendar_id)
        ]
        for state in hit:
            state.expired = True
        return len(hit)

    def _get(self, token: Token, user_id: str) -> SyncState:
        state = self._states.get(token.state_id)
        if state is None or state.expired or state.user_id != user_id:
            raise sync_state_not_found()
        self._states.move_to_end(state.id)
        return state

    def start(self, mb: Mailbox, calendar_id: str, lo: datetime, hi: datetime, size: int) -> Page:
        state = SyncState(secrets.token_urlsafe(12), mb.user_id, calendar_id, lo, hi)
        self._states[state.id] = state
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)
        items: list[DeltaItem] = []
        for inst in mb.instances(calendar_id, lo, hi):
            state.known.setdefault(inst.event_id, set()).add(inst.id)
            items.append(inst)
        return self._open_round(state, contiguous(items), mb.seq, size)

    def calendar_of(self, token: Token, user_id: str) -> str | None:
        """The calendar a live sync state of ``user_id``'s mailbox reads (None: no such state)."""
        state = self._states.get(token.state_id)
        return None if state is None or state.user_id != user_id else state.calendar_id

    def follow(self, mb: Mailbox, token: Token, size: int, *, omit_cancelled: bool = False) -> Page:
        """Serve a page for a $skiptoken or the first page of the next round for a $deltatoken.

        ``omit_cancelled``: a new round reports no item at all for occurrences cancelled since the
        token (behaviour switch ``cancelledOccurrencesInDelta: "omitted"``) instead of ``@removed``.
        """
        state = self._get(token, mb.user_id)
        if token.round_id:
            if token.round_id not in state.rounds:
                raise sync_state_not_found()
            return self._page(state, token.round_id, token.offset, size)
        if token.seq < mb.log_floor:
            raise sync_state_not_found()
        items = self._changes(mb, state, token.seq, omit_cancelled)
        return self._open_round(state, items, mb.seq, size)

    def _changes(
        self, mb: Mailbox, state: SyncState, since: int, omit_cancelled: bool
    ) -> list[DeltaItem]:
        changed = dict.fromkeys(
            e.event_id for e in mb.changes_since(since) if e.calendar_id == state.calendar_id
        )
        items: list[DeltaItem] = []
        for event_id in changed:
            event = mb.events.get(event_id)
            now = event_in_window(event, state.start, state.end) if event is not None else []
            now.sort(key=lambda i: (i.start_utc, i.id))
            before = state.known.pop(event_id, set())
            current = {i.id for i in now}
            gone = sorted(before - current)
            if not now and not before:
                gone = [event_id]  # changed outside the window: Graph reports it as @removed
            elif omit_cancelled and event is not None and event.cancelled:
                # Field-reported Graph: a cancelled occurrence just stops being listed.
                gone = [i for i in gone if not is_cancelled(event, i)]
            items.extend(Removed(i, event_id) for i in gone)
            items.extend(now)
            if current:
                state.known[event_id] = current
        return items

    def _open_round(self, state: SyncState, items: list[DeltaItem], seq: int, size: int) -> Page:
        round_id = secrets.token_urlsafe(6)
        state.rounds[round_id] = (items, seq)
        while len(state.rounds) > 4:
            state.rounds.popitem(last=False)
        return self._page(state, round_id, 0, size)

    def _page(self, state: SyncState, round_id: str, offset: int, size: int) -> Page:
        items, seq = state.rounds[round_id]
        end = min(offset + size, len(items))
        # A recurring series is not split across pages (community finding): the page grows.
        while 0 < end < len(items) and group_of(items[end]) == group_of(items[end - 1]):
            end += 1
        chunk = items[offset:end]
        if end < len(items):
            nxt = Token(state.id, state.start, state.end, round_id, end)
            return Page(chunk, nxt, None)
        return Page(chunk, None, Token(state.id, state.start, state.end, seq=seq))
