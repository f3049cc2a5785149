"""What can go wrong in the connector's domain; each maps to one problem ``code`` over HTTP."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base: ``code`` is the stable problem code, ``status`` the HTTP status it maps to."""

    code = "connector_error"
    status = 400
    title = "The request cannot be applied"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail


class UnknownCalendar(ConnectorError):
    code = "unknown_calendar"
    status = 422
    title = "A calendar id is not one of this connection's calendars"

    def __init__(self, calendar_ids: tuple[str, ...]) -> None:
        super().__init__(f"unknown calendar id(s): {', '.join(calendar_ids)}")
        self.calendar_ids = calendar_ids


class LinkedCalendarRequiresWriteAccess(ConnectorError):
    code = "linked_calendar_requires_write_access"
    status = 422
    title = "The Linked Calendar needs writer access"

    def __init__(self, calendar_id: str) -> None:
        super().__init__(
            f"calendar {calendar_id} is read-only for this account; bookings cannot be written"
        )
        self.calendar_id = calendar_id


class OutlookAlreadyConnected(ConnectorError):
    code = "outlook_already_connected"
    status = 409
    title = "This user already has an Outlook integration in this sub-account"


class MicrosoftAccountInUse(ConnectorError):
    code = "microsoft_account_in_use"
    status = 409
    title = "This Microsoft account is already connected elsewhere"


class ConnectionNotFound(ConnectorError):
    code = "connection_not_found"
    status = 404
    title = "No such connection"


class VersionMismatch(ConnectorError):
    code = "precondition_failed"
    status = 412
    title = "The connection changed since it was read (If-Match does not match)"


class ReauthRequired(ConnectorError):
    code = "reauth_required"
    status = 409
    title = "The user must sign in to Microsoft again"


class ConnectionDisconnected(ConnectorError):
    code = "connection_disconnected"
    status = 409
    title = "The connection was disconnected"
