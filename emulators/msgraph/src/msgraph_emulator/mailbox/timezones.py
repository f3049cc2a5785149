"""Time zones as Graph takes them (Windows or IANA names) and its ``dateTimeTimeZone`` format."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

from msgraph_emulator.mailbox.errors import MailboxError

_UTC_NAMES = frozenset({"utc", "etc/utc", "coordinated universal time", "tzone://microsoft/utc"})
_FRACTION = re.compile(r"\.(\d+)")


def unsupported_zone(name: str) -> MailboxError:
    return MailboxError(
        400,
        "TimeZoneNotSupportedException",
        "A valid TimeZone value must be specified. "
        f"The following TimeZone value is not supported: '{name}'.",
    )


@lru_cache(maxsize=1024)
def _lookup(name: str) -> ZoneInfo | None:
    if name.casefold() in _UTC_NAMES:
        return ZoneInfo("UTC")
    iana = win_tz.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def resolve_zone(name: str) -> ZoneInfo:
    """A Windows ("Pacific Standard Time") or IANA ("America/Los_Angeles") name, else 400."""
    zone = _lookup(name.strip())
    if zone is None:
        raise unsupported_zone(name)
    return zone


def is_known_zone(name: str) -> bool:
    return _lookup(name.strip()) is not None


def windows_name(name: str) -> str:
    """The Windows name Outlook stores for ``name`` (unchanged when already Windows or unknown)."""
    if name in win_tz or name.casefold() in _UTC_NAMES:
        return "UTC" if name.casefold() in _UTC_NAMES else name
    return tz_win.get(name, name)


def parse_local(value: str, zone: ZoneInfo) -> datetime:
    """Parse a ``dateTime`` (up to 7 fractional digits) into an aware datetime in ``zone``.

    Graph reads ``dateTime`` as wall-clock time in ``timeZone``; a trailing offset is honoured.
    """
    text = value.strip()
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MailboxError(
            400, "RequestBodyRead", f"Cannot convert the literal '{value}' to the expected type."
        ) from exc
    if parsed.tzinfo is not None:
        return parsed.astimezone(zone)
    return parsed.replace(tzinfo=zone)


def parse_instant(value: str) -> datetime:
    """An ISO 8601 query parameter (startDateTime); no offset means UTC."""
    return parse_local(value, ZoneInfo("UTC")).astimezone(UTC)


def format_local(value: datetime) -> str:
    """``2017-08-29T04:00:00.0000000`` (no offset, seven fractional digits).

    ``isoformat`` rather than ``strftime``: several times faster on this hot path, and it pads
    years below 1000 to four digits as Graph does (``0001-01-01``).
    """
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "0"


def format_utc(value: datetime) -> str:
    """``2017-04-15T03:00:50.7579581Z`` as in createdDateTime / lastModifiedDateTime."""
    return format_local(value.astimezone(UTC)) + "Z"


def format_offset(value: datetime) -> str:
    """DateTimeOffset as in ``originalStart``: ``2019-11-14T01:00:00Z``."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
