"""What can go wrong in the availability domain; each error maps to one problem ``code`` over HTTP
(the mapping is ``entrypoints/http.py``'s, one place for the whole service)."""

from __future__ import annotations

from typing import Any


class AvailabilityError(Exception):
    """Base: ``code`` is the stable problem code, ``status`` the HTTP status it maps to."""

    code = "availability_error"
    status = 400
    title = "The request cannot be applied"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail

    def extensions(self) -> dict[str, Any]:
        """Extra members of the problem document (RFC 9457 §3.2)."""
        return {}


# --- booking calendars ------------------------------------------------------------------------


class CalendarNotFound(AvailabilityError):
    code = "calendar_not_found"
    status = 404
    title = "No such booking calendar"


class CalendarVersionMismatch(AvailabilityError):
    code = "precondition_failed"
    status = 412
    title = "The calendar changed since it was read (If-Match does not match)"


class CalendarHasUpcomingBookings(AvailabilityError):
    code = "calendar_has_upcoming_bookings"
    status = 409
    title = "The calendar still has confirmed bookings that have not ended"


class InvalidCalendar(AvailabilityError):
    """A calendar document that is well formed but breaks a rule; ``field`` names the culprit
    (dotted path into the request body, as ``read_body`` reports shape errors)."""

    code = "invalid_calendar"
    status = 422
    title = "The booking calendar is not valid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def extensions(self) -> dict[str, Any]:
        return {"errors": [{"field": self.field, "message": self.message}]}


class InvalidTimeZone(InvalidCalendar):
    code = "invalid_time_zone"
    title = "Not an IANA time zone name"


class InvalidWorkingHours(InvalidCalendar):
    code = "invalid_working_hours"
    title = "Working hours must be ordered, non-empty and not overlap within a day"


class InvalidMembers(InvalidCalendar):
    code = "invalid_members"
    title = "The members do not fit the calendar's type (count or duplicates)"


class OutlookNotSupportedForEventCalendars(AvailabilityError):
    """The product's rule: the Outlook integration does not work with ``event`` calendars."""

    code = "outlook_not_supported_for_event_calendars"
    status = 422
    title = "Event calendars cannot use Outlook availability"


class InvalidWindow(AvailabilityError):
    code = "invalid_window"
    status = 422
    title = "The time window is not valid"
