"""Authorities: the ``{tenant}`` path segment and which accounts may sign in through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from msgraph_emulator.identity import aadsts
from msgraph_emulator.identity.errors import IdentityError
from msgraph_emulator.users import PERSONAL_TENANT_ID, User, UserRegistry

AuthorityKind = Literal["common", "organizations", "consumers", "tenant"]
_ALIASES: dict[str, AuthorityKind] = {
    "common": "common",
    "organizations": "organizations",
    "consumers": "consumers",
}


@dataclass(frozen=True)
class Authority:
    """A resolved ``{tenant}`` segment; ``segment`` is kept as the client wrote it."""

    segment: str
    kind: AuthorityKind
    tenant_id: str | None = None

    def allows(self, user: User) -> bool:
        if self.kind == "common":
            return True
        if self.kind == "organizations":
            return not user.is_personal
        if self.kind == "consumers":
            return user.is_personal
        return user.tenant_id == self.tenant_id

    @property
    def issuer_tenant(self) -> str:
        """The tenant placeholder in discovery's ``issuer`` (``{tenantid}`` for multi-tenant)."""
        if self.kind == "consumers":
            return PERSONAL_TENANT_ID
        return self.tenant_id or "{tenantid}"

    def refusal(self, user: User) -> IdentityError:
        idp = "live.com" if user.is_personal else f"https://sts.windows.net/{user.tenant_id}/"
        return aadsts.user_not_in_tenant(
            user.user_principal_name, idp, self.tenant_id or self.segment
        )


def resolve(segment: str, users: UserRegistry) -> Authority:
    """Map a path segment to an authority; unknown tenants fail like Entra (AADSTS90002).

    A tenant is known when a user lives in it, by GUID or by the domain of a work user's UPN
    (Entra accepts verified domain names such as ``contoso.onmicrosoft.com`` there too).
    """
    kind = _ALIASES.get(segment.lower())
    if kind is not None:
        return Authority(segment, kind)
    if segment.lower() == PERSONAL_TENANT_ID:
        return Authority(segment, "tenant", PERSONAL_TENANT_ID)
    for user in users.all():
        domain = user.user_principal_name.rpartition("@")[2].lower()
        if segment.lower() == user.tenant_id.lower() or (
            not user.is_personal and segment.lower() == domain
        ):
            return Authority(segment, "tenant", user.tenant_id)
    raise aadsts.tenant_not_found(segment)
