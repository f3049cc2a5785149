"""The emulator's whole in-memory state, composed of one part per area.

Ownership: ``directory`` (tenants, users, app registrations, consents, codes and refresh tokens)
belongs to the identity platform (``identity/``); ``mailboxes`` (calendars, events, delta state) to
the Graph calendar part (``graph/``); ``subscriptions`` (subscriptions, deliveries, faults,
throttling) to the change-notification part. Parts talk through ``changes``: the calendar part
emits one :class:`~msgraph_emulator.changes.Change` per created/updated/deleted event and the
notification part listens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msgraph_emulator.changes import ChangeFeed
from msgraph_emulator.graph.auth import SigningKey
from msgraph_emulator.settings import EmulatorSettings


@dataclass
class EmulatorState:
    settings: EmulatorSettings
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    changes: ChangeFeed = field(default_factory=ChangeFeed)
