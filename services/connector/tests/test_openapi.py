"""The connector's OpenAPI document: a valid OpenAPI 3.1 document that names exactly the routes
the app registers and every problem code the service raises, served at ``/openapi.json``, and
true of the live service (schemathesis).

The schemathesis run drives the connector that the harness serves on a real port, on real
PostgreSQL and Kafka and the Graph emulator. Hypothesis runs in a worker thread and calls the
server with ``requests`` while the event loop goes on serving it.

The run found four service bugs (text with NUL reaching PostgreSQL, a problem ``instance`` that
was not a URI reference, Graph outages as 500, 405 without ``Allow``); the tests at the end keep
them fixed, and the run is no longer steered around them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from yarl import URL

from calsync_common.http.auth import mint
from calsync_common.settings import HttpSettings
from calsync_connector.domain.errors import ConnectorError
from calsync_connector.entrypoints import openapi
from calsync_connector.entrypoints.http import init_app
from calsync_connector.entrypoints.views import parse_if_match
from calsync_connector.service_layer import connect
from calsync_connector.settings import ConnectorSettings

from .conftest import RETURN_URL, Harness

METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})
#: Not `positive_data_acceptance`: schema-valid data is often refused by rules the schema cannot
#: state (a return URL off the allow-list, a calendar id the connection does not have).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,  # a 2xx with the token is probed without it and with a wrong one
]
#: Per operation, pass and generation mode; derandomized, so a failure reproduces run after run.
EXAMPLES = 30
#: The operation that ends the real connection runs last.
LAST = "DELETE /v1/sub-accounts/{sub_account_id}/connections/{connection_id}"


def _document_text() -> str:
    return json.dumps(openapi.load())


def test_the_document_is_a_valid_openapi_3_1_document() -> None:
    document = openapi.load()
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_the_document_names_exactly_the_routes_the_app_registers() -> None:
    settings = ConnectorSettings(
        http=HttpSettings(port=0),
        database_url="postgresql://unused@localhost/unused",
    )
    app = init_app(settings)  # nothing opens before the app starts
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None  # aiohttp's HEAD of each GET
    }
    documented = {
        (method.upper(), path)
        for path, item in openapi.load()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == registered


def _subclasses(cls: type[ConnectorError]) -> Iterator[type[ConnectorError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_problem_code_of_the_service_is_documented() -> None:
    assert connect.InvalidOAuthState.code  # connect.py defines some of them
    codes = {error.code for error in _subclasses(ConnectorError)}
    codes |= {"invalid_request", "malformed_json", "unsupported_media_type", "unauthenticated"}
    codes |= {"forbidden", "payload_too_large", "internal_error"}
    text = _document_text()
    assert {code for code in codes if f'"{code}"' not in text and f"`{code}`" not in text} == set()


@pytest.mark.parametrize(
    ("header", "version"),
    [
        (None, None),
        ('"v3"', 3),
        ('W/"v3"', 3),
        ("v3", 3),
        ("*", -1),
        ('"v"', -1),
        ('"v²"', -1),  # a digit to str.isdigit, not to int(): was a 500
        ('"v' + "9" * 5000 + '"', -1),  # past int()'s digit limit: was a 500
    ],
)
def test_if_match_names_one_of_our_versions_or_none(
    header: str | None, version: int | None
) -> None:
    """As the document says: a version (412 unless current), or one that matches nothing."""
    assert parse_if_match(header) == version


@pytest.mark.integration
async def test_the_document_is_served_without_a_token(harness: Harness) -> None:
    resp = await harness.client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == openapi.load()


@pytest.mark.integration
async def test_unknown_body_fields_are_refused_with_each_error_named(harness: Harness) -> None:
    # (schemathesis does not count an extra property as invalid data, so it is checked here)
    sub_account_id = f"sa-{uuid.uuid4().hex[:8]}"
    started = await harness.client.post(
        f"/v1/sub-accounts/{sub_account_id}/users/u/connections/outlook",
        json={"return_url": RETURN_URL, "returnUrl": RETURN_URL},
        headers=harness.headers(sub_account_id),
    )
    settings = await harness.client.put(
        f"/v1/sub-accounts/{sub_account_id}/connections/{uuid.uuid4()}/settings",
        json={"sync_preference": "two_way", "linked": None},
        headers=harness.headers(sub_account_id),
    )
    for resp, extra in ((started, "returnUrl"), (settings, "linked")):
        assert resp.status == 422
        assert resp.content_type == "application/problem+json"
        body = await resp.json()
        assert body["code"] == "invalid_request"
        assert body["errors"] == [{"field": extra, "message": "Extra inputs are not permitted"}]


# --- schemathesis against the live service ---------------------------------------------------


@dataclass(frozen=True)
class Target:
    base_url: str
    sub_account_id: str
    #: Authorization headers: the sub-account's own token, a platform service's, the worker's.
    own: dict[str, str]
    platform: dict[str, str]
    worker: dict[str, str]
    #: The form Microsoft's page posts back for a sign-in started in ``sub_account_id``.
    consent: dict[str, str]


@dataclass(frozen=True)
class Pass:
    name: str
    headers: dict[str, str]
    path_parameters: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    modes: tuple[schemathesis.GenerationMode, ...] = tuple(schemathesis.GenerationMode)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _passes(operation: Any, target: Target, connection_id: str) -> list[Pass]:
    names = {p.name for p in operation.path_parameters}
    if not operation.path.startswith(("/v1/", "/internal/")):
        return [Pass("as documented", {})]
    positive = (schemathesis.GenerationMode.POSITIVE,)
    refused = [
        Pass("no token (401)", {}, modes=positive),
        # A sub-account token on another sub-account, or on the worker's endpoint.
        Pass("not this caller's (403)", target.own, modes=positive),
    ]
    if operation.path.startswith("/internal/"):
        return [
            Pass("generated ids", target.worker),
            Pass("the real connection", target.worker, {"connection_id": connection_id}),
            *refused,
        ]
    mine = {"sub_account_id": target.sub_account_id}
    if "connection_id" in names:
        mine["connection_id"] = connection_id
    passes = [
        # Any sub-account, any id: a platform service's token takes them to the database.
        Pass("generated ids, platform token", target.platform),
        Pass("the real connection, its sub-account's token", target.own, mine),
        *refused,
    ]
    if operation.path.endswith("/connections/outlook"):
        allowed = {"return_url": RETURN_URL}  # or every start ends in return_url_not_allowed
        passes.append(Pass("an allowed return_url", target.own, mine, allowed, positive))
    return passes


def _negatable(operation: Any, run: Pass) -> bool:
    """Whether the pass leaves anything that negative generation can make invalid."""
    fixed = run.path_parameters or {}
    return (
        any(p.name not in fixed for p in operation.path_parameters)
        or any(p.name.lower() != "authorization" for p in operation.headers)
        or len(operation.query) > 0
        or (len(operation.body) > 0 and run.body is None)
    )


def _explore(operation: Any, run: Pass, base_url: str, session: requests.Session) -> list[str]:
    failures: list[str] = []
    for mode in run.modes:
        if mode.is_negative and not _negatable(operation, run):
            continue
        strategy = operation.as_strategy(
            generation_mode=mode,
            path_parameters=run.path_parameters,
            **({"body": run.body} if run.body is not None else {}),
        )

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=strategy)
        def check(case: Any) -> None:
            response = case.call(base_url=base_url, session=session, headers=run.headers)
            case.validate_response(response, checks=CHECKS, headers=run.headers)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all are reported
            failures.append(f"{operation.label} [{run.name}, {mode.value}]:\n{_describe(exc)}")
    return failures


def _describe(exc: BaseException) -> str:
    """The failure's message and, for Hypothesis' groups, their members'."""
    if isinstance(exc, BaseExceptionGroup) and not str(exc).startswith("Schemathesis"):
        return "\n".join([str(exc), *(_describe(e) for e in exc.exceptions)])
    return str(exc)


def _run_schemathesis(target: Target) -> tuple[list[str], int]:
    schema = schemathesis.openapi.from_dict(openapi.load())
    schema.config.generation.update(
        # Credentials come from the passes; missing and wrong ones are ignored_auth's probes.
        with_security_parameters=False,
    )

    requests_made = 0

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        nonlocal requests_made
        requests_made += 1

    failures: list[str] = []
    with requests.Session() as session:
        session.trust_env = False  # no proxy variables between the test and the server
        # The browser's way back from Microsoft: the one 303 that fuzzing cannot reach.
        sign_in = session.post(
            f"{target.base_url}/oauth/callback", data=target.consent, allow_redirects=False
        )
        schema["/oauth/callback"]["POST"].validate_response(sign_in)
        location = parse_qs(urlsplit(sign_in.headers["Location"]).query)
        connection_id = location["outlook_connection_id"][0]

        operations = [
            schema[path][method.upper()]
            for path, item in openapi.load()["paths"].items()
            for method in item
            if method in METHODS
        ]
        operations.sort(key=lambda op: op.label == LAST)
        for operation in operations:
            for run in _passes(operation, target, connection_id):
                failures += _explore(operation, run, target.base_url, session)
        # Now disconnected: what still acts on the connection answers 409.
        for operation in operations:
            if operation.method.upper() in ("PUT", "POST") and "{connection_id}" in operation.path:
                worker = operation.path.startswith("/internal/")
                gone = Pass(
                    "the disconnected connection",
                    target.worker if worker else target.own,
                    {"connection_id": connection_id, "sub_account_id": target.sub_account_id},
                    modes=(schemathesis.GenerationMode.POSITIVE,),
                )
                failures += _explore(operation, gone, target.base_url, session)
    return failures, requests_made


@pytest.mark.integration
# schemathesis' negative strategies call the `random` module while Hypothesis draws
# (schemathesis/specs/openapi/negative/__init__.py), which Hypothesis flags; not ours to change.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_schemathesis_finds_no_server_error_and_nothing_undocumented(
    harness: Harness,
) -> None:
    sub_account_id = f"sa-{uuid.uuid4().hex[:8]}"
    user = await harness.new_user()
    started = await harness.start(sub_account_id, "user-1")
    auth = harness.settings.auth
    target = Target(
        base_url=str(harness.client.make_url("")).rstrip("/"),
        sub_account_id=sub_account_id,
        own=_bearer(mint(auth, subject="platform-user", sub_account_id=sub_account_id)),
        platform=_bearer(mint(auth, subject="platform", service="platform")),
        worker=_bearer(mint(auth, subject="sync-worker", service="sync-worker")),
        consent=await harness.consent(started["authorization_url"], user["userPrincipalName"]),
    )
    began = time.monotonic()
    failures, requests_made = await asyncio.to_thread(_run_schemathesis, target)
    elapsed = time.monotonic() - began
    assert not failures, (
        f"{len(failures)} failure(s) in {requests_made} requests, {elapsed:.1f}s:\n\n"
        + "\n\n".join(failures)
    )
    assert requests_made > 500, requests_made  # the run did run


# --- what the run found, kept fixed -----------------------------------------------------------


@pytest.mark.integration
async def test_text_with_a_nul_character_is_refused_at_the_edge(harness: Harness) -> None:
    sub_account_id = f"sa-{uuid.uuid4().hex[:8]}"
    own = harness.headers(sub_account_id)
    client = harness.client
    statuses = {
        "callback state": await client.get(URL("/oauth/callback?state=%00", encoded=True)),
        "list user_id": await client.get(
            URL(f"/v1/sub-accounts/{sub_account_id}/connections?user_id=%00", encoded=True),
            headers=own,
        ),
        "start user_id": await client.post(
            URL(f"/v1/sub-accounts/{sub_account_id}/users/%00/connections/outlook", encoded=True),
            json={"return_url": RETURN_URL},
            headers=own,
        ),
        "start return_url": await client.post(
            f"/v1/sub-accounts/{sub_account_id}/users/u/connections/outlook",
            json={"return_url": RETURN_URL + "\x00"},
            headers=own,
        ),
        "list sub_account_id": await client.get(
            URL("/v1/sub-accounts/%00/connections", encoded=True),
            headers=harness.service_headers("platform"),
        ),
    }
    assert {name: resp.status for name, resp in statuses.items()} == dict.fromkeys(statuses, 400)
    for resp in statuses.values():
        assert (await resp.json())["code"] in ("invalid_characters", "invalid_oauth_state")


@pytest.mark.integration
async def test_a_problem_instance_is_the_path_as_sent(harness: Harness) -> None:
    resp = await harness.client.get(URL("/v1/sub-accounts/%C3%A9%20x/connections", encoded=True))
    assert resp.status == 401
    assert (await resp.json())["instance"] == "/v1/sub-accounts/%C3%A9%20x/connections"


@pytest.mark.integration
async def test_a_graph_outage_during_a_refresh_is_503_microsoft_unavailable(
    harness: Harness,
) -> None:
    sub_account_id = f"sa-{uuid.uuid4().hex[:8]}"
    user = await harness.new_user()
    location = await harness.connect(sub_account_id, "user-1", user["userPrincipalName"])
    connection_id = parse_qs(urlsplit(location).query)["outlook_connection_id"][0]
    await harness.control("PUT", f"/_emulator/faults/users/{user['id']}", {"error_rate": 1.0})
    resp = await harness.client.post(
        f"/v1/sub-accounts/{sub_account_id}/connections/{connection_id}/calendars:refresh",
        headers=harness.headers(sub_account_id),
    )
    assert resp.status == 503
    assert (await resp.json())["code"] == "microsoft_unavailable"
    assert resp.headers["Retry-After"] == "30"
    await harness.control("DELETE", f"/_emulator/faults/users/{user['id']}")


@pytest.mark.integration
async def test_method_not_allowed_names_the_allowed_methods(harness: Harness) -> None:
    resp = await harness.client.patch("/openapi.json")
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"
    assert "GET" in resp.headers.get("Allow", "")  # RFC 9110 §15.5.6: MUST
