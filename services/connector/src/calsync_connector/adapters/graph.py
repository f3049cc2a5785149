"""The few Microsoft Graph reads the connector makes: the user, the mailbox time zone, calendars.

One aiohttp session for the app's lifetime, trusting the configured CA bundle only (the emulator's
in the sandbox). 429 and 5xx are :class:`GraphUnavailable` (retry later); 401/403 mean the token
no longer works for this user.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from calsync_connector.adapters.identity import MicrosoftSettings
from calsync_connector.domain.model import Calendar


class GraphUnavailable(Exception):
    """Graph throttled us or failed: nothing was learned, try again later."""


class GraphRefused(Exception):
    """Graph refused the token or the request (4xx other than 429)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


def ssl_context(settings: MicrosoftSettings) -> ssl.SSLContext:
    if settings.ca_bundle is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(settings.ca_bundle))


class GraphClient:
    def __init__(self, settings: MicrosoftSettings, session: aiohttp.ClientSession) -> None:
        self._base = settings.graph_url.rstrip("/")
        self._session = session
        self._settings = settings
        # Built on first use: in the sandbox the emulator writes its CA when it starts, which
        # may be after this process (a missing bundle then fails that request, not the start).
        self._ssl: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl_context(self._settings)
        return self._ssl

    async def _get(self, token: str, path_or_url: str) -> dict[str, Any]:
        url = path_or_url if path_or_url.startswith("https://") else f"{self._base}{path_or_url}"
        try:
            headers = {"Authorization": f"Bearer {token}"}
            async with self._session.get(url, headers=headers, ssl=self._ssl_context()) as resp:
                if resp.status == 429 or resp.status >= 500:
                    raise GraphUnavailable(f"graph answered {resp.status}")
                body: dict[str, Any] = await resp.json(content_type=None)
                if resp.status >= 400:
                    error = body.get("error") or {}
                    raise GraphRefused(resp.status, str(error.get("code", "unknown")))
                return body
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:  # OSError: no CA bundle yet
            raise GraphUnavailable(type(exc).__name__) from exc

    async def me(self, token: str) -> dict[str, Any]:
        return await self._get(token, "/me?$select=id,displayName,mail,userPrincipalName")

    async def time_zone(self, token: str) -> str | None:
        body = await self._get(token, "/me/mailboxSettings/timeZone")
        value = body.get("value")
        return str(value) if value else None

    async def calendars(self, token: str) -> tuple[Calendar, ...]:
        found: list[Calendar] = []
        url: str | None = "/me/calendars?$select=id,name,canEdit,isDefaultCalendar,owner&$top=100"
        while url is not None:
            body = await self._get(token, url)
            for item in body.get("value", []):
                owner = item.get("owner") or {}
                found.append(
                    Calendar(
                        id=str(item["id"]),
                        name=str(item.get("name") or ""),
                        access="writer" if item.get("canEdit") else "reader",
                        is_default=bool(item.get("isDefaultCalendar")),
                        owner_name=owner.get("name"),
                        owner_address=owner.get("address"),
                    )
                )
            url = body.get("@odata.nextLink")
        return tuple(found)
