"""Scope strings: OIDC scopes versus Graph delegated permissions.

Clients may name Graph permissions short (``Calendars.ReadWrite``) or as URLs
(``https://graph.microsoft.com/Calendars.ReadWrite``); Graph is the default resource, so Entra
grants and reports them by their short names.
"""

from __future__ import annotations

from collections.abc import Iterable

from msgraph_emulator.identity import aadsts

GRAPH_RESOURCE = "https://graph.microsoft.com/"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
#: Delegated Graph permissions the emulator knows (the calendar app's world).
GRAPH_SCOPES = frozenset(
    {
        "User.Read",
        "User.ReadBasic.All",
        "Calendars.Read",
        "Calendars.ReadWrite",
        "Calendars.Read.Shared",
        "Calendars.ReadWrite.Shared",
        "MailboxSettings.Read",
        "MailboxSettings.ReadWrite",
        "Mail.Read",
    }
)
_BY_FOLDED = {s.casefold(): s for s in GRAPH_SCOPES | OIDC_SCOPES}
DEFAULT = ".default"


def parse(raw: str | None, client_id: str) -> frozenset[str]:
    """Split and canonicalise a ``scope`` parameter; unknown permissions are refused."""
    result: set[str] = set()
    for item in (raw or "").split():
        name = item[len(GRAPH_RESOURCE) :] if item.lower().startswith(GRAPH_RESOURCE) else item
        if name == DEFAULT:
            result.add(DEFAULT)
            continue
        canonical = _BY_FOLDED.get(name.casefold())
        if canonical is None:
            raise aadsts.unknown_scope(item, client_id)
        result.add(canonical)
    return frozenset(result)


def resource_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The Graph permissions among ``scopes`` (what consent and access tokens are about)."""
    return frozenset(s for s in scopes if s in GRAPH_SCOPES)


def render(scopes: Iterable[str]) -> str:
    """Space-separated, Graph permissions first, then OIDC scopes, each group sorted."""
    items = set(scopes)
    return " ".join(
        sorted(items & GRAPH_SCOPES)
        + [s for s in ("openid", "profile", "email") if s in items]
        + (["offline_access"] if "offline_access" in items else [])
    )
