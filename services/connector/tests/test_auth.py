"""Bearer JWT authentication and authorization of the connector's HTTP API (no infrastructure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDict
from pydantic import SecretStr, ValidationError

from calsync_common.http.auth import (
    AUTHENTICATOR,
    Authenticator,
    AuthSettings,
    Caller,
    Unauthenticated,
    authorize_service,
    authorize_sub_account,
    caller,
    mint,
    service_caller,
    setup_auth,
    sub_account_caller,
)
from calsync_common.http.problems import PROBLEM_JSON, Problem, problem_middleware
from calsync_common.settings import is_placeholder

# 64 bytes: long enough for HS512 too, so signing the refused HS512 token does not warn.
SECRET_1 = "k1-" + "a" * 61
SECRET_2 = "k2-" + "b" * 61
OTHER_SECRET = "xx-" + "c" * 61
SETTINGS = AuthSettings(keys={"k1": SecretStr(SECRET_1)}, signing_key_id="k1")
NOW = datetime.now(UTC)


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid sub-account claims; an override of None removes the claim."""
    iat = int(datetime.now(UTC).timestamp())
    base: dict[str, Any] = {
        "iss": SETTINGS.issuer,
        "aud": SETTINGS.audience,
        "sub": "user-1",
        "iat": iat,
        "exp": iat + 600,
        "sub_account_id": "sa-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(
    payload: dict[str, Any] | None = None,
    *,
    key: Any = SECRET_1,
    algorithm: str = "HS256",
    kid: str | None = "k1",
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload or claims(), key, algorithm=algorithm, headers=headers)


def bearer(value: str) -> str:
    return f"Bearer {value}"


def refusal(authenticator: Authenticator, header: str | None) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        authenticator.authenticate(header)
    return caught.value


# --- authenticate ---------------------------------------------------------------------------


def test_a_valid_sub_account_token_yields_its_caller() -> None:
    found = Authenticator(SETTINGS).authenticate(bearer(token()))
    assert found == Caller(subject="user-1", sub_account_id="sa-1", service=None)
    assert not found.is_service
    assert not found.platform


def test_the_scheme_is_case_insensitive() -> None:
    assert Authenticator(SETTINGS).authenticate(f"bearer  {token()} ").sub_account_id == "sa-1"


@pytest.mark.parametrize(("service", "platform"), [("sync-worker", True), ("billing", False)])
def test_a_service_token_yields_a_service_caller(service: str, platform: bool) -> None:
    found = Authenticator(SETTINGS).authenticate(
        bearer(token(claims(sub_account_id=None, svc=service, sub=service)))
    )
    assert found == Caller(service, sub_account_id=None, service=service, platform=platform)
    assert found.is_service


def test_minted_tokens_authenticate() -> None:
    authenticator = Authenticator(SETTINGS)
    assert authenticator.authenticate(
        bearer(mint(SETTINGS, subject="u", sub_account_id="sa-9"))
    ) == Caller.for_sub_account("sa-9", "u")
    assert authenticator.authenticate(
        bearer(mint(SETTINGS, subject="platform", service="platform"))
    ) == Caller.for_service("platform", platform=True)


def test_clock_skew_within_the_leeway_is_tolerated() -> None:
    iat = int(datetime.now(UTC).timestamp())
    skewed = claims(iat=iat - 600, exp=iat - SETTINGS.leeway_s + 5)
    assert Authenticator(SETTINGS).authenticate(bearer(token(skewed))).subject == "user-1"


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _iat() -> int:
    return int(datetime.now(UTC).timestamp())


#: name → (token, or a whole header when it starts with "header:"), expected words in detail
REFUSED: dict[str, Callable[[], tuple[str, str]]] = {
    "bad signature": lambda: (token(key=OTHER_SECRET), "signature"),
    "tampered payload": lambda: (_tampered(), "signature"),
    "unknown kid": lambda: (token(kid="k9"), "unknown key"),
    "no kid": lambda: (token(kid=None), "kid"),
    "expired": lambda: (token(claims(iat=_iat() - 3600, exp=_iat() - 60)), "expired"),
    "not yet valid": lambda: (token(claims(iat=_iat() + 600, exp=_iat() + 1200)), "not valid yet"),
    "wrong issuer": lambda: (token(claims(iss="https://evil.example")), "issuer"),
    # PyJWT 2.10.0 matched a str issuer by substring (CVE-2024-53861).
    "issuer substring": lambda: (token(claims(iss="platform.calsync")), "issuer"),
    "wrong audience": lambda: (token(claims(aud="calsync-availability")), "audience"),
    "lifetime too long": lambda: (
        token(claims(iat=_iat() - 60, exp=_iat() - 60 + SETTINGS.max_lifetime_s + 1)),
        "lifetime",
    ),
    "both kinds": lambda: (token(claims(svc="platform")), "exactly one"),
    "neither kind": lambda: (token(claims(sub_account_id=None)), "exactly one"),
    "no exp": lambda: (token(claims(exp=None)), "'exp'"),
    "no iat": lambda: (token(claims(iat=None)), "'iat'"),
    "no iss": lambda: (token(claims(iss=None)), "'iss'"),
    "no aud": lambda: (token(claims(aud=None)), "'aud'"),
    "no sub": lambda: (token(claims(sub=None)), "'sub'"),
    "empty sub": lambda: (token(claims(sub="")), "subject"),
    "numeric sub": lambda: (token(claims(sub=42)), "subject"),
    "numeric sub-account": lambda: (token(claims(sub_account_id=7)), "sub_account_id"),
    "empty svc": lambda: (token(claims(sub_account_id=None, svc="")), "svc"),
    "alg none": lambda: (token(key=None, algorithm="none"), "algorithm"),
    "HS512": lambda: (token(algorithm="HS512"), "algorithm"),
    "RS256": lambda: (token(key=_rsa_key(), algorithm="RS256"), "algorithm"),
    "not a JWT": lambda: ("not-a-jwt", "malformed"),
    "three garbage segments": lambda: ("gArbAge1.gArbAge2.gArbAge3", "malformed"),
}


def _tampered() -> str:
    header, _, signature = token().split(".")
    forged = jwt.utils.base64url_encode(json.dumps(claims(sub_account_id="sa-2")).encode())
    return f"{header}.{forged.decode()}.{signature}"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_token_is_refused_without_echoing_it(case: str) -> None:
    value, reason = REFUSED[case]()
    problem = refusal(Authenticator(SETTINGS), bearer(value))
    assert (problem.status, problem.code) == (401, "unauthenticated")
    assert reason in (problem.detail or "")
    assert 'error="invalid_token"' in problem.challenge
    rendered = json.dumps(problem.body()) + str(problem)
    for part in filter(None, value.split(".")):
        assert part not in rendered


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer", "malformed"),
        ("Bearer ", "malformed"),
        ("Bearer a b", "malformed"),
    ],
)
def test_absent_or_non_bearer_credentials_are_refused(header: str | None, reason: str) -> None:
    problem = refusal(Authenticator(SETTINGS), header)
    assert (problem.status, problem.code) == (401, "unauthenticated")
    assert reason in (problem.detail or "")
    assert problem.challenge.startswith("Bearer")


def test_a_valid_token_under_another_scheme_is_not_echoed() -> None:
    value = token()
    problem = refusal(Authenticator(SETTINGS), f"Token {value}")
    assert value.split(".")[2] not in json.dumps(problem.body())
    assert "invalid_token" not in problem.challenge  # RFC 6750: no error without credentials


# --- key rotation -----------------------------------------------------------------------------


def test_keys_rotate_by_kid() -> None:
    old = SETTINGS
    rotating = AuthSettings(
        keys={"k1": SecretStr(SECRET_1), "k2": SecretStr(SECRET_2)}, signing_key_id="k2"
    )
    rotated = AuthSettings(keys={"k2": SecretStr(SECRET_2)}, signing_key_id="k2")
    old_token = bearer(mint(old, subject="u", sub_account_id="sa-1"))
    new_token = bearer(mint(rotating, subject="u", sub_account_id="sa-1"))
    assert jwt.get_unverified_header(new_token.split()[1])["kid"] == "k2"

    during = Authenticator(rotating)
    assert during.authenticate(old_token).subject == "u"
    assert during.authenticate(new_token).subject == "u"

    after = Authenticator(rotated)
    assert after.authenticate(new_token).subject == "u"
    assert "unknown key" in (refusal(after, old_token).detail or "")


# --- authorize --------------------------------------------------------------------------------


def _forbidden(call: Callable[[], None]) -> Problem:
    with pytest.raises(Problem) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    return caught.value


def test_a_sub_account_token_acts_on_its_own_sub_account_only() -> None:
    own = Caller.for_sub_account("sa-1", "user-1")
    authorize_sub_account(own, "sa-1")
    problem = _forbidden(lambda: authorize_sub_account(own, "sa-2"))
    assert "sa-1" not in (problem.detail or "")


@pytest.mark.parametrize("service", sorted(SETTINGS.platform_services))
def test_platform_services_act_on_any_sub_account(service: str) -> None:
    authenticated = Authenticator(SETTINGS).authenticate(
        bearer(mint(SETTINGS, subject=service, service=service))
    )
    authorize_sub_account(authenticated, "sa-1")
    authorize_sub_account(authenticated, "sa-2")


def test_other_services_act_on_no_sub_account() -> None:
    stranger = Authenticator(SETTINGS).authenticate(
        bearer(mint(SETTINGS, subject="billing", service="billing"))
    )
    _forbidden(lambda: authorize_sub_account(stranger, "sa-1"))
    # Privilege comes from the settings at authentication, never from a hand-built Caller.
    _forbidden(lambda: authorize_sub_account(Caller("p", None, "platform"), "sa-1"))


def test_authorize_service_accepts_only_the_named_services() -> None:
    allowed = frozenset({"sync-worker"})
    authorize_service(Caller.for_service("sync-worker", platform=True), allowed)
    _forbidden(
        lambda: authorize_service(Caller.for_service("availability", platform=True), allowed)
    )
    _forbidden(lambda: authorize_service(Caller.for_sub_account("sa-1", "u"), allowed))


def test_a_caller_is_exactly_one_kind() -> None:
    with pytest.raises(ValueError):
        Caller("u", "sa-1", "platform")
    with pytest.raises(ValueError):
        Caller("u", None, None)
    with pytest.raises(ValueError):
        Caller("u", "sa-1", None, platform=True)


# --- settings and mint ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "signing", "words"),
    [
        ({}, "k1", "at least one key"),
        ({"k1": "too-short-secret"}, "k1", "shorter than 32 bytes"),
        ({"k1": SECRET_1}, "k2", "signing_key_id"),
    ],
)
def test_settings_refuse_weak_or_inconsistent_keys(
    keys: dict[str, str], signing: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        AuthSettings(keys={k: SecretStr(v) for k, v in keys.items()}, signing_key_id=signing)
    assert words in str(caught.value)
    for secret in keys.values():
        assert secret not in str(caught.value)


def test_the_development_key_is_a_placeholder_the_settings_base_refuses() -> None:
    development = AuthSettings.development()
    assert development.keys
    assert all(is_placeholder(secret) for secret in development.keys.values())
    assert (
        Authenticator(development)
        .authenticate(bearer(mint(development, subject="u", sub_account_id="sa-1")))
        .sub_account_id
        == "sa-1"
    )


def test_mint_refuses_what_the_connector_would_refuse() -> None:
    with pytest.raises(ValueError):
        mint(SETTINGS, subject="u")
    with pytest.raises(ValueError):
        mint(SETTINGS, subject="u", sub_account_id="sa-1", service="platform")
    with pytest.raises(ValueError):
        mint(SETTINGS, subject="u", sub_account_id="sa-1", lifetime_s=SETTINGS.max_lifetime_s + 1)
    with pytest.raises(ValueError):
        mint(SETTINGS, subject="u", sub_account_id="sa-1", now=datetime(2030, 1, 1))


def test_mint_signs_claims_at_the_given_time() -> None:
    issued = NOW - timedelta(hours=2)
    minted = mint(SETTINGS, subject="u", sub_account_id="sa-1", lifetime_s=60, now=issued)
    payload = jwt.decode(minted, options={"verify_signature": False})
    assert payload["exp"] - payload["iat"] == 60
    assert payload["iat"] == int(issued.timestamp())
    assert "expired" in (refusal(Authenticator(SETTINGS), bearer(minted)).detail or "")


# --- the mint CLI -----------------------------------------------------------------------------


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONNECTOR_", "CALSYNC_ENVIRONMENT"))
    }
    return subprocess.run(
        [sys.executable, "-m", "calsync_connector.mint_token", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_mints_with_the_configured_key() -> None:
    env = {
        "CONNECTOR_AUTH__KEYS": json.dumps({"k1": SECRET_1}),
        "CONNECTOR_AUTH__SIGNING_KEY_ID": "k1",
        "CALSYNC_ENVIRONMENT": "production",
    }
    done = _run_cli("--sub-account", "sa-7", "--subject", "user-7", "--lifetime", "120", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    minted = done.stdout.strip()
    assert Authenticator(SETTINGS).authenticate(bearer(minted)) == Caller.for_sub_account(
        "sa-7", "user-7"
    )
    payload = jwt.decode(minted, options={"verify_signature": False})
    assert payload["exp"] - payload["iat"] == 120


def test_cli_falls_back_to_the_development_key_with_a_warning() -> None:
    done = _run_cli("--service", "sync-worker", env={})
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr
    found = Authenticator(AuthSettings.development()).authenticate(bearer(done.stdout.strip()))
    assert found == Caller.for_service("sync-worker", platform=True)


@pytest.mark.parametrize(
    "env",
    [
        {"CALSYNC_ENVIRONMENT": "production"},  # no key outside development: no fallback
        {
            "CONNECTOR_AUTH__KEYS": json.dumps({"k1": "tiny-secret-value-7"}),
            "CONNECTOR_AUTH__SIGNING_KEY_ID": "k1",
        },
        {
            "CALSYNC_ENVIRONMENT": "test",
            "CONNECTOR_AUTH__KEYS": json.dumps({"k1": "insecure" + "x" * 40}),
            "CONNECTOR_AUTH__SIGNING_KEY_ID": "k1",
        },
    ],
)
def test_cli_refuses_unusable_keys_without_printing_them(env: dict[str, str]) -> None:
    done = _run_cli("--sub-account", "sa-1", env=env)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "tiny-secret" not in done.stderr
    assert "xxxx" not in done.stderr


# --- aiohttp ----------------------------------------------------------------------------------


class CountingAuthenticator(Authenticator):
    calls = 0

    def authenticate(self, authorization_header: str | None) -> Caller:
        self.calls += 1
        return super().authenticate(authorization_header)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[problem_middleware()])
    setup_auth(app, CountingAuthenticator(SETTINGS))

    async def ping(request: web.Request) -> web.Response:
        found = sub_account_caller(request)
        assert caller(request) is found  # cached on the request
        return web.json_response({"subject": found.subject})

    async def access_token(request: web.Request) -> web.Response:
        return web.json_response(
            {"service": service_caller(request, frozenset({"sync-worker"})).service}
        )

    async def other_401(_: web.Request) -> web.Response:
        raise Problem(401, "unauthenticated", "Unauthenticated")

    app.router.add_get("/v1/sub-accounts/{sub_account_id}/ping", ping)
    app.router.add_post("/internal/v1/access-tokens", access_token)
    app.router.add_get("/other", other_401)
    async with TestClient(TestServer(app)) as c:
        yield c


Client = TestClient[web.Request, web.Application]


def _auth(value: str) -> dict[str, str]:
    return {"Authorization": bearer(value)}


async def test_http_without_a_token_is_a_401_problem_with_a_challenge(client: Client) -> None:
    resp = await client.get("/v1/sub-accounts/sa-1/ping")
    assert resp.status == 401
    assert resp.content_type == PROBLEM_JSON
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="calsync-connector"'
    body = await resp.json(content_type=PROBLEM_JSON)
    assert body["code"] == "unauthenticated"
    assert body["instance"] == "/v1/sub-accounts/sa-1/ping"


async def test_http_with_a_bad_token_is_a_401_that_does_not_echo_it(client: Client) -> None:
    value = token(key=OTHER_SECRET)
    resp = await client.get("/v1/sub-accounts/sa-1/ping", headers=_auth(value))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    text = await resp.text()
    assert value.split(".")[2] not in text
    assert json.loads(text)["code"] == "unauthenticated"


async def test_http_refuses_several_authorization_headers(client: Client) -> None:
    headers = CIMultiDict([("Authorization", bearer(token())), ("Authorization", "Basic eA==")])
    resp = await client.get("/v1/sub-accounts/sa-1/ping", headers=headers)
    assert resp.status == 401


async def test_http_every_401_carries_a_challenge(client: Client) -> None:
    resp = await client.get("/other")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_http_sub_account_token_for_another_sub_account_is_403(client: Client) -> None:
    resp = await client.get("/v1/sub-accounts/sa-2/ping", headers=_auth(token()))
    assert resp.status == 403
    assert resp.content_type == PROBLEM_JSON
    assert "WWW-Authenticate" not in resp.headers
    assert (await resp.json(content_type=PROBLEM_JSON))["code"] == "forbidden"


async def test_http_own_sub_account_and_platform_services_pass(client: Client) -> None:
    counting = client.app[AUTHENTICATOR]
    assert isinstance(counting, CountingAuthenticator)
    before = counting.calls
    resp = await client.get("/v1/sub-accounts/sa-1/ping", headers=_auth(token()))
    assert resp.status == 200
    assert await resp.json() == {"subject": "user-1"}
    assert counting.calls == before + 1  # the handler asked twice; the request cached it

    platform = mint(SETTINGS, subject="platform", service="platform")
    resp = await client.get("/v1/sub-accounts/sa-2/ping", headers=_auth(platform))
    assert resp.status == 200


async def test_http_internal_endpoint_takes_only_its_services(client: Client) -> None:
    worker = mint(SETTINGS, subject="sync-worker", service="sync-worker")
    resp = await client.post("/internal/v1/access-tokens", headers=_auth(worker))
    assert (resp.status, await resp.json()) == (200, {"service": "sync-worker"})

    for other in (
        mint(SETTINGS, subject="availability", service="availability"),
        mint(SETTINGS, subject="u", sub_account_id="sa-1"),
    ):
        resp = await client.post("/internal/v1/access-tokens", headers=_auth(other))
        assert resp.status == 403
        assert (await resp.json(content_type=PROBLEM_JSON))["code"] == "forbidden"


def test_a_verified_token_is_cached_until_it_expires_then_checked_again() -> None:
    now = [datetime.now(UTC).timestamp()]
    authenticator = Authenticator(SETTINGS, clock=lambda: now[0])
    iat = int(now[0])
    value = token(claims(iat=iat, exp=iat + 60))
    first = authenticator.authenticate(bearer(value))
    decoded = 0
    original = authenticator._decode

    def counting(raw: str) -> dict[str, Any]:
        nonlocal decoded
        decoded += 1
        return original(raw)

    authenticator._decode = counting  # type: ignore[method-assign]
    assert authenticator.authenticate(bearer(value)) == first  # from the cache
    assert decoded == 0
    # Past exp + leeway by the cache's clock: it lets go, and the token is checked again (by
    # PyJWT, on the real clock, which refuses it once it has really expired).
    now[0] = iat + 60 + SETTINGS.leeway_s + 1
    authenticator.authenticate(bearer(value))
    assert decoded == 1
    # A forged token never reaches the cache by looking like a cached one.
    assert refusal(authenticator, bearer(value[:-2] + "xx")).challenge


def test_the_cache_is_bounded() -> None:
    authenticator = Authenticator(SETTINGS)
    authenticator.CACHE_SIZE = 3
    for n in range(5):
        authenticator.authenticate(bearer(token(claims(sub=f"user-{n}"))))
    assert len(authenticator._verified) == 3
