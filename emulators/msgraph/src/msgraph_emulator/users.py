"""Sandbox users: the people whose mailboxes the emulator holds (shared by every part)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PERSONAL_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


@dataclass
class User:
    """A work (Entra tenant) or personal (MSA) account; ``id`` is the ``oid`` claim."""

    id: str
    tenant_id: str
    user_principal_name: str
    display_name: str
    #: Mailbox time zone as the user set it: a Windows name ("Pacific Standard Time") or an IANA
    #: one ("Europe/Bucharest"); ``mailboxSettings`` returns it unchanged, as Graph does.
    time_zone: str = "UTC"

    @property
    def is_personal(self) -> bool:
        return self.tenant_id == PERSONAL_TENANT_ID


class UserRegistry:
    """All users by id; upn look-ups are case-insensitive as in Entra, and O(1) (an index by
    casefolded UPN: the throttling middleware resolves ``/users/{upn}`` on every request)."""

    def __init__(self) -> None:
        self._by_id: dict[str, User] = {}
        self._by_upn: dict[str, User] = {}

    def add(self, user: User) -> User:
        replaced = self._by_id.get(user.id)
        if replaced is not None:
            old = replaced.user_principal_name.casefold()
            if self._by_upn.get(old) is replaced:
                del self._by_upn[old]
        self._by_id[user.id] = user
        self._by_upn.setdefault(user.user_principal_name.casefold(), user)  # first one wins
        return user

    def get(self, user_id: str) -> User | None:
        return self._by_id.get(user_id)

    def by_upn(self, upn: str) -> User | None:
        return self._by_upn.get(upn.casefold())

    def all(self) -> list[User]:
        return list(self._by_id.values())

    def reset(self) -> None:
        self._by_id.clear()
        self._by_upn.clear()

    def dump(self) -> list[dict[str, Any]]:
        return [asdict(u) for u in self._by_id.values()]

    def load(self, data: list[dict[str, Any]]) -> None:
        for item in data:
            self.add(User(**item))
