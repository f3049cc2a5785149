"""Domain errors: what Graph would answer, without depending on the HTTP layer."""

from __future__ import annotations


class MailboxError(Exception):
    """A rejected mailbox operation, carrying Graph's status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found() -> MailboxError:
    return MailboxError(
        404, "ErrorItemNotFound", "The specified object was not found in the store."
    )


def malformed_id() -> MailboxError:
    return MailboxError(400, "ErrorInvalidIdMalformed", "Id is malformed.")


def access_denied() -> MailboxError:
    return MailboxError(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )


def invalid_request(message: str) -> MailboxError:
    return MailboxError(400, "ErrorInvalidRequest", message)


def body_read(message: str) -> MailboxError:
    return MailboxError(400, "RequestBodyRead", message)


def cannot_delete_default() -> MailboxError:
    """Deleting the default calendar. Graph documents only that DELETE works on "a calendar other
    than the default calendar"; the code is Exchange's for deleting a default (distinguished)
    folder, and the status 400 is the emulator's choice."""
    return MailboxError(
        400, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
    )
