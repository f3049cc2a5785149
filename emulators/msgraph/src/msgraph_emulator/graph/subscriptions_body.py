"""Validation of ``POST /subscriptions`` and ``PATCH /subscriptions/{id}`` bodies.

Messages follow what Graph answers where known (``expirationDateTime is a required property for
subscription creation.``; ``Subscription expiration can only be 4230 minutes in the future.``
with code ``ExtensionError``); the rest are worded in the same style.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from yarl import URL

from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.notify.model import CHANGE_TYPES, TLS_VERSIONS, parse_utc
from msgraph_emulator.settings import EmulatorSettings

BAD_PAYLOAD = (
    "Could not process subscription creation payload. "
    "Are all property names spelled and camelCased properly?"
)
MAX_CLIENT_STATE = 128


def bad_request(message: str, code: str = "InvalidRequest") -> GraphError:
    return GraphError(400, code, message)


@dataclass(frozen=True)
class CreateRequest:
    change_types: tuple[str, ...]
    notification_url: str
    resource: str
    expiration: datetime
    client_state: str | None
    lifecycle_notification_url: str | None
    latest_supported_tls_version: str
    include_resource_data: bool
    encryption_certificate: str | None
    encryption_certificate_id: str | None
    notification_url_app_id: str | None


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(BAD_PAYLOAD)
    return value


def _required_str(body: dict[str, Any], name: str) -> str:
    value = _optional_str(body, name)
    if not value:
        raise bad_request(f"{name} is a required property for subscription creation.")
    return value


def check_url(url: str, name: str, settings: EmulatorSettings) -> str:
    """HTTPS absolute URL, or (sandbox setting) ``http://`` to a loopback host."""
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise bad_request(f"The {name} is not a valid URL.") from exc
    if not parsed.is_absolute() or not parsed.host:
        raise bad_request(f"The {name} is not a valid URL.")
    if parsed.scheme == "https":
        return url
    if parsed.scheme == "http" and settings.allow_http_notification_urls and _loopback(parsed):
        return url
    raise bad_request(f"The {name} must be HTTPS.")


def _loopback(url: URL) -> bool:
    host = (url.host or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_expiration(raw: object, now: datetime, settings: EmulatorSettings) -> datetime:
    if not isinstance(raw, str):
        raise bad_request(BAD_PAYLOAD)
    try:
        expiration = parse_utc(raw)
    except ValueError as exc:
        raise bad_request(BAD_PAYLOAD) from exc
    if expiration <= now:
        raise bad_request("Subscription expiration must be in the future.", "ExtensionError")
    max_minutes = settings.subscription_max_minutes
    if expiration > now + timedelta(minutes=max_minutes):
        raise bad_request(
            f"Subscription expiration can only be {max_minutes} minutes in the future.",
            "ExtensionError",
        )
    return expiration


def parse_change_types(raw: str) -> tuple[str, ...]:
    parts = [p.strip() for p in raw.split(",")]
    if not parts or any(p not in CHANGE_TYPES for p in parts):
        raise bad_request(f"Invalid 'changeType' attribute: '{raw}'.")
    return tuple(dict.fromkeys(parts))


def parse_create(body: object, now: datetime, settings: EmulatorSettings) -> CreateRequest:
    if not isinstance(body, dict):
        raise bad_request(BAD_PAYLOAD)
    if body.get("expirationDateTime") is None:
        raise bad_request("expirationDateTime is a required property for subscription creation.")
    change_types = parse_change_types(_required_str(body, "changeType"))
    notification_url = check_url(
        _required_str(body, "notificationUrl"), "notificationUrl", settings
    )
    resource = _required_str(body, "resource")
    expiration = check_expiration(body["expirationDateTime"], now, settings)
    client_state = _optional_str(body, "clientState")
    if client_state is not None and len(client_state) > MAX_CLIENT_STATE:
        raise bad_request(f"clientState must not exceed {MAX_CLIENT_STATE} characters.")
    lifecycle_url = _optional_str(body, "lifecycleNotificationUrl")
    if lifecycle_url is not None:
        lifecycle_url = check_url(lifecycle_url, "lifecycleNotificationUrl", settings)
    tls = _optional_str(body, "latestSupportedTlsVersion") or "v1_2"
    if tls not in TLS_VERSIONS:
        raise bad_request(f"Invalid 'latestSupportedTlsVersion' value: '{tls}'.")
    include_data = body.get("includeResourceData") or False
    if not isinstance(include_data, bool):
        raise bad_request(BAD_PAYLOAD)
    if include_data:
        raise bad_request(
            "Rich notifications (includeResourceData) are not supported by this emulator."
        )
    return CreateRequest(
        change_types=change_types,
        notification_url=notification_url,
        resource=resource,
        expiration=expiration,
        client_state=client_state,
        lifecycle_notification_url=lifecycle_url,
        latest_supported_tls_version=tls,
        include_resource_data=include_data,
        encryption_certificate=_optional_str(body, "encryptionCertificate"),
        encryption_certificate_id=_optional_str(body, "encryptionCertificateId"),
        notification_url_app_id=_optional_str(body, "notificationUrlAppId"),
    )


@dataclass(frozen=True)
class UpdateRequest:
    expiration: datetime | None
    notification_url: str | None


def parse_update(body: object, now: datetime, settings: EmulatorSettings) -> UpdateRequest:
    if not isinstance(body, dict):
        raise bad_request(BAD_PAYLOAD)
    raw_exp, raw_url = body.get("expirationDateTime"), body.get("notificationUrl")
    if raw_exp is None and raw_url is None:
        raise bad_request(
            "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' "
            "property and its value."
        )
    if "lifecycleNotificationUrl" in body:
        raise bad_request("lifecycleNotificationUrl cannot be updated; recreate the subscription.")
    expiration = None if raw_exp is None else check_expiration(raw_exp, now, settings)
    url = None
    if raw_url is not None:
        if not isinstance(raw_url, str):
            raise bad_request(BAD_PAYLOAD)
        url = check_url(raw_url, "notificationUrl", settings)
    return UpdateRequest(expiration=expiration, notification_url=url)
