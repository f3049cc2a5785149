"""Whole-state operations over the parts of :class:`EmulatorState`: reset, dump, load, seed.

A *part* is any attribute of the state with ``reset()``, ``dump()`` and ``load(data)``; a state
document is ``{"<part name>": <that part's dump>, ...}``. New parts join by adding a field.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from typing import Any, Protocol, runtime_checkable

from msgraph_emulator.settings import EmulatorSettings
from msgraph_emulator.state import EmulatorState


@runtime_checkable
class Part(Protocol):
    def reset(self) -> None: ...
    def dump(self) -> Any: ...
    def load(self, data: Any) -> None: ...


def parts(state: EmulatorState) -> dict[str, Part]:
    """Parts in field order, so ``users`` loads before the parts that refer to users."""
    found: dict[str, Part] = {}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, Part):
            found[f.name] = value
    return found


def reset_state(state: EmulatorState) -> None:
    for part in parts(state).values():
        part.reset()


def dump_state(state: EmulatorState) -> dict[str, Any]:
    return {name: part.dump() for name, part in parts(state).items()}


def load_state(state: EmulatorState, data: dict[str, Any]) -> list[str]:
    """Load the parts named in ``data`` (on top of what is there); returns the ignored keys."""
    known = parts(state)
    for name, part in known.items():
        if name in data:
            part.load(data[name])
    return sorted(set(data) - set(known))


def sandbox_document() -> dict[str, Any]:
    text = resources.files("msgraph_emulator").joinpath("sandbox.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def startup_document(settings: EmulatorSettings) -> dict[str, Any] | None:
    """The seed file if configured, else the built-in sandbox if enabled, else nothing."""
    if settings.seed_file is not None:
        data: dict[str, Any] = json.loads(settings.seed_file.read_text("utf-8"))
        return data
    return sandbox_document() if settings.seed_sandbox else None


def seed(state: EmulatorState) -> None:
    document = startup_document(state.settings)
    if document is not None:
        load_state(state, document)
