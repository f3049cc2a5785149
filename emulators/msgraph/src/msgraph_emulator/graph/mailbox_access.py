"""Whose mailbox a route addresses (``/me`` or ``/users/{id|userPrincipalName}``) and the
caller's access to it, for delegated tokens.

* ``{id}`` naming the caller (id or UPN, case-insensitive) is the same as ``/me``.
* A user Graph can't resolve in the caller's tenant answers ``404 ErrorInvalidUser``
  "The requested user '{id}' is invalid." (what Graph returns for ``/users/{x}/...`` Outlook
  resources when ``{x}`` does not exist).
* Another user's mailbox needs a ``.Shared`` scope **and** a share: the owner shared a calendar
  with the caller (the caller's mailbox holds a calendar whose ``owner.address`` is the owner's
  UPN). *Decision:* a share exposes the owner's **default calendar** only (the documented
  ``/users/{owner}/calendar`` path of a sharee), read-only or writable as the share says; writing
  needs ``Calendars.ReadWrite.Shared`` and a writable share. Anything else answers
  ``403 ErrorAccessDenied``, as Graph does for another user's calendar without permission.
"""

from __future__ import annotations

from typing import Literal

from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.mailbox.errors import access_denied
from msgraph_emulator.mailbox.store import Mailbox
from msgraph_emulator.users import User, UserRegistry

Grant = Literal["owner", "read", "write"]
READ_SHARED = frozenset({"Calendars.Read.Shared", "Calendars.ReadWrite.Shared"})
WRITE_SHARED = frozenset({"Calendars.ReadWrite.Shared"})


def invalid_user(ref: str) -> GraphError:
    return GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")


def resolve_user(users: UserRegistry, me: User, ref: str) -> User:
    """The user ``ref`` (object id or UPN, case-insensitive) names in the caller's tenant."""
    wanted = ref.strip().casefold()
    if wanted in (me.id.casefold(), me.user_principal_name.casefold()):
        return me
    found = users.get(ref.strip()) or users.get(wanted) or users.by_upn(wanted)
    if found is None or found.tenant_id != me.tenant_id:
        raise invalid_user(ref)
    return found


def shared_grant(sharee: Mailbox, owner: User) -> Grant | None:
    """The access the owner gave the sharee ("write" wins over "read"), None without a share."""
    address = owner.user_principal_name.casefold()
    granted = {
        c.access
        for c in sharee.calendars.values()
        if c.access != "owner" and c.owner_address.casefold() == address
    }
    if "write" in granted:
        return "write"
    return "read" if "read" in granted else None


def delegate_grant(sharee: Mailbox, owner: User, scopes: frozenset[str], writing: bool) -> Grant:
    """Check a delegated caller's access to another user's mailbox; 403 when it has none."""
    grant = shared_grant(sharee, owner)
    needed = WRITE_SHARED if writing else READ_SHARED
    if grant is None or not scopes & needed or (writing and grant != "write"):
        raise access_denied()
    return grant
