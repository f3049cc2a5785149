"""The identity platform's part of the emulator state: apps, consents, codes, refresh tokens.

Pure bookkeeping (no HTTP, no clocks of its own: callers pass ``now`` as epoch seconds) so the
rules in :mod:`flows` can be exercised directly. Offers ``reset``/``dump``/``load`` like every
part of :class:`~msgraph_emulator.state.EmulatorState`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from msgraph_emulator.identity.apps import AppRegistry

DAY_S = 86_400


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    scopes: list[str]
    issued_at: float
    expires_at: float
    nonce: str | None = None
    code_challenge: str | None = None
    redeemed: bool = False


@dataclass
class RefreshToken:
    """One opaque refresh token; rotations of one sign-in share a ``family_id``."""

    token: str
    family_id: str
    user_id: str
    client_id: str
    scopes: list[str]
    #: When the user signed in (start of the family); compared with TokensValidFrom.
    auth_time: float
    #: When this token was issued; Entra's inactivity window runs from here.
    issued_at: float


@dataclass
class IdentityStore:
    apps: AppRegistry = field(default_factory=AppRegistry)
    #: (user id, client id) -> consented Graph permissions.
    consents: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: (user id, client id) -> permissions a test pre-approved for automatic sign-in.
    preapprovals: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    revoked_families: set[str] = field(default_factory=set)
    #: user id -> TokensValidFrom (epoch seconds), set by "revoke sign-in sessions".
    tokens_valid_from: dict[str, float] = field(default_factory=dict)

    # Consent

    def grant_consent(self, user_id: str, client_id: str, scopes: set[str]) -> None:
        self.consents.setdefault((user_id, client_id), set()).update(scopes)

    def consented(self, user_id: str, client_id: str) -> frozenset[str]:
        return frozenset(self.consents.get((user_id, client_id), set()))

    def withdraw_consent(self, user_id: str, client_id: str | None) -> int:
        keys = [k for k in self.consents if k[0] == user_id and client_id in (None, k[1])]
        for key in keys:
            del self.consents[key]
        return len(keys)

    def preapprove(self, user_id: str, client_id: str, scopes: set[str]) -> None:
        self.preapprovals.setdefault((user_id, client_id), set()).update(scopes)

    # Codes and refresh tokens

    def issue_code(self, code: AuthCode) -> AuthCode:
        self.codes[code.code] = code
        return code

    def issue_refresh_token(
        self,
        *,
        user_id: str,
        client_id: str,
        scopes: list[str],
        auth_time: float,
        now: float,
        family_id: str | None = None,
    ) -> RefreshToken:
        token = RefreshToken(
            # Opaque like Entra's (which are encrypted blobs, not JWTs); prefix marks the emulator.
            token=f"0.EMU.{secrets.token_urlsafe(48)}",
            family_id=family_id or str(uuid.uuid4()),
            user_id=user_id,
            client_id=client_id,
            scopes=scopes,
            auth_time=auth_time,
            issued_at=now,
        )
        self.refresh_tokens[token.token] = token
        return token

    def revoke_user(self, user_id: str, now: float) -> None:
        self.tokens_valid_from[user_id] = now

    def revoke_family(self, token: str) -> bool:
        found = self.refresh_tokens.get(token)
        if found is not None:
            self.revoked_families.add(found.family_id)
        return found is not None

    def age_user_tokens(self, user_id: str, days: float) -> int:
        """Pretend the user's refresh tokens were issued ``days`` earlier (inactivity)."""
        aged = [t for t in self.refresh_tokens.values() if t.user_id == user_id]
        for t in aged:
            t.issued_at -= days * DAY_S
        return len(aged)

    # Part protocol

    def reset(self) -> None:
        self.apps.reset()
        for table in (
            self.consents,
            self.preapprovals,
            self.codes,
            self.refresh_tokens,
            self.tokens_valid_from,
        ):
            table.clear()
        self.revoked_families.clear()

    def dump(self) -> dict[str, Any]:
        return {
            "apps": self.apps.dump(),
            "consents": _pairs_dump(self.consents),
            "preapprovals": _pairs_dump(self.preapprovals),
            "codes": [asdict(c) for c in self.codes.values()],
            "refreshTokens": [asdict(t) for t in self.refresh_tokens.values()],
            "revokedFamilies": sorted(self.revoked_families),
            "tokensValidFrom": dict(self.tokens_valid_from),
        }

    def load(self, data: dict[str, Any]) -> None:
        self.apps.load(data.get("apps", []))
        self.consents.update(_pairs_load(data.get("consents", [])))
        self.preapprovals.update(_pairs_load(data.get("preapprovals", [])))
        self.codes.update((c["code"], AuthCode(**c)) for c in data.get("codes", []))
        self.refresh_tokens.update(
            (t["token"], RefreshToken(**t)) for t in data.get("refreshTokens", [])
        )
        self.revoked_families.update(data.get("revokedFamilies", []))
        self.tokens_valid_from.update(data.get("tokensValidFrom", {}))


def _pairs_dump(table: dict[tuple[str, str], set[str]]) -> list[dict[str, Any]]:
    return [
        {"userId": user, "clientId": client, "scopes": sorted(scopes)}
        for (user, client), scopes in table.items()
    ]


def _pairs_load(items: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    return {(i["userId"], i["clientId"]): set(i["scopes"]) for i in items}
