"""The ``subscription`` resource and the event resources it may watch."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
TLS_VERSIONS = frozenset({"v1_0", "v1_1", "v1_2", "v1_3"})

_GUIDISH = r"[^/'()?#]+"
_RESOURCE_PATTERNS = (
    re.compile(r"^me/events$", re.IGNORECASE),
    re.compile(r"^me/calendar/events$", re.IGNORECASE),
    re.compile(rf"^me/calendars/(?P<calendar>{_GUIDISH})/events$", re.IGNORECASE),
    re.compile(rf"^users/(?P<user>{_GUIDISH})/events$", re.IGNORECASE),
    re.compile(rf"^users/(?P<user>{_GUIDISH})/calendar/events$", re.IGNORECASE),
    re.compile(
        rf"^users/(?P<user>{_GUIDISH})/calendars/(?P<calendar>{_GUIDISH})/events$",
        re.IGNORECASE,
    ),
)


@dataclass(frozen=True)
class ResourceScope:
    """Whose events a subscription watches: one calendar, or the default calendar (None)."""

    user_ref: str | None  # None = the signed-in user ("me"); else a user id or UPN
    calendar_id: str | None


def parse_resource(resource: str) -> ResourceScope | None:
    """Parse an event-collection resource; None if unsupported (e.g. a single event)."""
    path = resource.strip().split("?", 1)[0].strip("/")
    for pattern in _RESOURCE_PATTERNS:
        match = pattern.match(path)
        if match:
            groups = match.groupdict()
            return ResourceScope(user_ref=groups.get("user"), calendar_id=groups.get("calendar"))
    return None


def format_utc(value: datetime) -> str:
    """Graph's ``DateTimeOffset`` rendering: ``2016-11-20T18:23:45.9356913Z`` (7 digits)."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


def parse_utc(value: str) -> datetime:
    """Parse an ISO 8601 instant; naive values are taken as UTC (Graph does the same)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    frac = re.match(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", text)
    if frac:  # Python takes at most 6 fractional digits; Graph sends 7.
        text = f"{frac.group(1)}.{frac.group(2)[:6].ljust(6, '0')}{frac.group(3)}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass
class Subscription:
    id: str
    resource: str
    application_id: str
    change_types: tuple[str, ...]
    notification_url: str
    expiration: datetime
    creator_id: str
    tenant_id: str
    #: The mailbox owner whose events are watched (resolved at creation).
    user_id: str
    #: None = the mailbox's default calendar.
    calendar_id: str | None
    client_state: str | None = None
    lifecycle_notification_url: str | None = None
    latest_supported_tls_version: str = "v1_2"
    include_resource_data: bool = False
    encryption_certificate: str | None = None
    encryption_certificate_id: str | None = None
    notification_url_app_id: str | None = None
    #: Set after ``reauthorizationRequired``; deliveries are held until reauthorized.
    needs_reauthorization: bool = False
    reauthorization_notice_sent: bool = False

    def to_graph(self) -> dict[str, Any]:
        """The JSON Graph returns for this subscription (without ``@odata.context``).

        Key set and nulls as in the Outlook subscription sample (outlook-change-notifications-
        overview.md, example 1), ``includeResourceData`` null unless set, but without
        ``notificationContentType``: the v1.0 schema (and so msgraph-sdk) has no such property.
        """
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": format_utc(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": True if self.include_resource_data else None,
            "latestSupportedTlsVersion": self.latest_supported_tls_version,
            "encryptionCertificate": self.encryption_certificate,
            "encryptionCertificateId": self.encryption_certificate_id,
            "notificationUrlAppId": self.notification_url_app_id,
        }

    def dump(self) -> dict[str, Any]:
        data = asdict(self)
        data["expiration"] = self.expiration.isoformat()
        data["change_types"] = list(self.change_types)
        return data

    @classmethod
    def load(cls, data: dict[str, Any]) -> Subscription:
        values = dict(data)
        values["expiration"] = datetime.fromisoformat(values["expiration"])
        values["change_types"] = tuple(values["change_types"])
        return cls(**values)
