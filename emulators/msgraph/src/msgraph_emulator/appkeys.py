"""Typed keys for what the aiohttp application holds (a module of its own so handler modules
and ``app.py`` can both import it without a cycle)."""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.state import EmulatorState

STATE = web.AppKey("state", EmulatorState)


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE]


def base_url(request: web.Request) -> str:
    """The URL clients reached us by (issuer and endpoints are built from it).

    ``public_url`` wins when set; otherwise the request's own scheme and Host, so a server on a
    random port (tests) advertises the port it really listens on.
    """
    configured = request.app[STATE].settings.public_url
    return (configured or f"{request.scheme}://{request.host}").rstrip("/")
