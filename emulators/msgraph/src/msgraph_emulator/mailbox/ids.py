"""Graph-looking identifiers: long, case-sensitive, base64url; occurrence ids derive from the date.

Exchange item ids are base64 blobs (``AAMkAGI1AAAt9AHjAAA=``); occurrence ids encode the series
master plus the occurrence's original start, so one occurrence keeps its id while the series
exists (and a re-created series at another time yields different occurrence ids, a known trap).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import struct
from datetime import UTC, datetime

_PREFIX = b"\x00\x00\x00\x00\x8a\x1f"  # constant head, like Exchange's "AAMkAG" ids
_RAW_LEN = 46  # bytes of a calendar / master / single id
_OCC_TAG = 0x07
_ICAL_HEAD = "040000008200E00074C5B7101A82E008"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def new_id() -> str:
    return _b64(_PREFIX + secrets.token_bytes(_RAW_LEN - len(_PREFIX)))


def new_change_key() -> str:
    return base64.b64encode(secrets.token_bytes(22)).decode("ascii")


def new_ical_uid() -> str:
    created = secrets.token_hex(8).upper()
    return f"{_ICAL_HEAD}00000000{created}{'0' * 16}10000000{secrets.token_hex(16).upper()}"


def occurrence_ical_uid(master_uid: str, original_start: datetime) -> str:
    """Outlook embeds the occurrence date (yyyy mm dd) right after the class id."""
    d = original_start.astimezone(UTC)
    return master_uid[:32] + f"{d.year:04X}{d.month:02X}{d.day:02X}" + master_uid[40:]


def occurrence_id(master_id: str, original_start: datetime) -> str:
    raw = base64.urlsafe_b64decode(master_id)
    stamp = int(original_start.astimezone(UTC).timestamp())
    return _b64(raw + struct.pack(">Bq", _OCC_TAG, stamp))


def parse_occurrence_id(item_id: str) -> tuple[str, datetime] | None:
    """``(master_id, original_start_utc)`` for an occurrence id, None for any other id."""
    try:
        raw = base64.urlsafe_b64decode(item_id.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    if len(raw) != _RAW_LEN + 9 or raw[_RAW_LEN] != _OCC_TAG:
        return None
    (stamp,) = struct.unpack(">q", raw[_RAW_LEN + 1 :])
    return _b64(raw[:_RAW_LEN]), datetime.fromtimestamp(stamp, UTC)


def is_well_formed(item_id: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(item_id.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return len(raw) in (_RAW_LEN, _RAW_LEN + 9) and raw.startswith(_PREFIX)
