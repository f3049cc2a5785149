"""App registrations: what Entra knows about a client before any user signs in."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from msgraph_emulator.users import User

#: Entra's "supported account types" of an app registration.
SignInAudience = Literal[
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
]


@dataclass
class AppRegistration:
    client_id: str
    display_name: str
    redirect_uris: list[str]
    #: Client secret values (a registration may hold several during rotation).
    secrets: list[str] = field(default_factory=list)
    sign_in_audience: SignInAudience = "AzureADandPersonalMicrosoftAccount"
    #: Home tenant; only meaningful for ``AzureADMyOrg`` apps.
    tenant_id: str | None = None

    def check_secret(self, secret: str) -> bool:
        # Constant-time compare: this is the one place a guessed secret could be timed.
        return any(hmac.compare_digest(secret.encode(), s.encode()) for s in self.secrets)

    def admits(self, user: User) -> bool:
        """Whether the registration's supported account types include this user."""
        if self.sign_in_audience == "AzureADMyOrg":
            return user.tenant_id == self.tenant_id
        if self.sign_in_audience == "AzureADMultipleOrgs":
            return not user.is_personal
        if self.sign_in_audience == "PersonalMicrosoftAccount":
            return user.is_personal
        return True

    def allows_redirect(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def public(self) -> dict[str, Any]:
        """The registration without secret values (as the portal lists it)."""
        data = asdict(self)
        data["secrets"] = [f"{s[:3]}***" for s in self.secrets]
        return data


class AppRegistry:
    def __init__(self) -> None:
        self._apps: dict[str, AppRegistration] = {}

    def register(
        self,
        *,
        display_name: str,
        redirect_uris: list[str],
        client_id: str | None = None,
        secret: str | None = None,
        sign_in_audience: SignInAudience = "AzureADandPersonalMicrosoftAccount",
        tenant_id: str | None = None,
    ) -> AppRegistration:
        app = AppRegistration(
            client_id=client_id or str(uuid.uuid4()),
            display_name=display_name,
            redirect_uris=list(redirect_uris),
            secrets=[secret or secrets.token_urlsafe(30)],
            sign_in_audience=sign_in_audience,
            tenant_id=tenant_id,
        )
        self._apps[app.client_id] = app
        return app

    def get(self, client_id: str) -> AppRegistration | None:
        return self._apps.get(client_id)

    def all(self) -> list[AppRegistration]:
        return list(self._apps.values())

    def reset(self) -> None:
        self._apps.clear()

    def dump(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in self._apps.values()]

    def load(self, data: list[dict[str, Any]]) -> None:
        for item in data:
            app = AppRegistration(**item)
            self._apps[app.client_id] = app
