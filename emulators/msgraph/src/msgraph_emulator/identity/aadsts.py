"""Catalog: one constructor per AADSTS code the emulator produces (texts as Entra words them)."""

from __future__ import annotations

from datetime import datetime

from msgraph_emulator.identity.errors import IdentityError


def tenant_not_found(tenant: str) -> IdentityError:
    return IdentityError(
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud.",
        page_only=True,
    )


def unknown_client(client_id: str, tenant: str) -> IdentityError:
    return IdentityError(
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You may have sent your authentication "
        "request to the wrong tenant.",
        page_only=True,
    )


def redirect_mismatch(redirect_uri: str, client_id: str) -> IdentityError:
    return IdentityError(
        "invalid_request",
        50011,
        f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
        f"URIs configured for the application '{client_id}'. Make sure the redirect URI sent in "
        "the request matches one added to your application in the Azure portal.",
        page_only=True,
    )


def user_not_in_tenant(upn: str, idp: str, tenant: str) -> IdentityError:
    return IdentityError(
        "invalid_request",
        50020,
        f"User account '{upn}' from identity provider '{idp}' does not exist in tenant "
        f"'{tenant}' and cannot access the application in that tenant. The account needs to be "
        "added as an external user in the tenant first.",
        page_only=True,
    )


def missing_parameter(name: str) -> IdentityError:
    return IdentityError(
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def unknown_scope(scope: str, client_id: str) -> IdentityError:
    return IdentityError(
        "invalid_client",
        650053,
        f"The application '{client_id}' asked for scope '{scope}' that doesn't exist on the "
        "resource '00000003-0000-0000-c000-000000000000'. Contact the app vendor.",
    )


def unsupported_response_type(value: str) -> IdentityError:
    return IdentityError(
        "unsupported_response_type",
        700054,
        f"response_type '{value}' is not enabled for the application.",
    )


def bad_challenge_method(method: str) -> IdentityError:
    return IdentityError(
        "invalid_request", 50149, f"Invalid Code_Challenge_method parameter: '{method}'."
    )


def bad_challenge_size() -> IdentityError:
    return IdentityError(
        "invalid_request",
        501491,
        "InvalidCodeChallengeMethodInvalidSize - Invalid size of Code_Challenge parameter.",
    )


def user_declined() -> IdentityError:
    return IdentityError("access_denied", 65004, "User declined to consent to access the app.")


def missing_secret() -> IdentityError:
    return IdentityError(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
        status=401,
    )


def bad_secret(client_id: str) -> IdentityError:
    return IdentityError(
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        status=401,
    )


def unsupported_grant(grant_type: str) -> IdentityError:
    return IdentityError(
        "unsupported_grant_type",
        70003,
        f"The app requested an unsupported grant type '{grant_type}'.",
    )


def invalid_grant(what: str) -> IdentityError:
    return IdentityError("invalid_grant", 9002313, f"Invalid request. {what}")


def code_redeemed() -> IdentityError:
    return IdentityError(
        "invalid_grant",
        54005,
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or "
        "use an existing refresh token.",
    )


def grant_expired() -> IdentityError:
    return IdentityError(
        "invalid_grant",
        70008,
        "The provided authorization code or refresh token has expired due to inactivity. Send a "
        "new interactive authorization request for this user and resource.",
    )


def reply_address_mismatch() -> IdentityError:
    return IdentityError(
        "invalid_grant",
        500112,
        "The reply address does not match the reply address provided when requesting the "
        "authorization code.",
    )


def verifier_mismatch() -> IdentityError:
    return IdentityError(
        "invalid_grant",
        501481,
        "The Code_Verifier does not match the code_challenge supplied in the authorization "
        "request.",
    )


def tokens_revoked(issued: datetime, valid_from: datetime) -> IdentityError:
    return IdentityError(
        "invalid_grant",
        50173,
        "The provided grant has expired due to it being revoked, and a fresh auth token is "
        f"needed. The user might have changed or reset their password. The grant was issued on "
        f"'{issued:%Y-%m-%dT%H:%M:%S.%fZ}' and the TokensValidFrom date for this user is "
        f"'{valid_from:%Y-%m-%dT%H:%M:%S.%fZ}'.",
    )


def inactive_token(issued: datetime, inactive_days: float) -> IdentityError:
    days = int(inactive_days)
    return IdentityError(
        "invalid_grant",
        700082,
        "The refresh token has expired due to inactivity. The token was issued on "
        f"{issued:%Y-%m-%dT%H:%M:%S.%fZ} and was inactive for {days}.00:00:00.",
    )


def consent_required(client_id: str, app_name: str) -> IdentityError:
    return IdentityError(
        "invalid_grant",
        65001,
        f"The user or administrator has not consented to use the application with ID "
        f"'{client_id}' named '{app_name}'. Send an interactive authorization request for this "
        "user and resource.",
        suberror="consent_required",
    )


def unknown_user(login: str, tenant: str) -> IdentityError:
    return IdentityError(
        "invalid_request",
        50034,
        f"The user account {login} does not exist in the {tenant} directory. To sign into this "
        "application, the account must be added to the directory.",
        page_only=True,
    )


def login_required() -> IdentityError:
    return IdentityError(
        "login_required", 50058, "A silent sign-in request was sent but no user is signed in."
    )
