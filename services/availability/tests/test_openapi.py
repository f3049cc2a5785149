"""The availability service's OpenAPI document: valid OpenAPI 3.1, naming exactly the routes the
app registers (the operational ones and ``/openapi.json`` included: they are documented) and
every problem code the service raises, served at ``/openapi.json``, and true of the live service
(schemathesis).

The schemathesis run drives the service on a real port, on real PostgreSQL and Kafka, with a
member, a calendar of each kind and a booking to aim at. Hypothesis runs in a worker thread and
calls the server with ``requests`` while the event loop goes on serving it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
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

from calsync_availability.domain.errors import AvailabilityError
from calsync_availability.entrypoints import openapi
from calsync_availability.entrypoints.http import init_app
from calsync_availability.settings import AvailabilitySettings
from calsync_common.http.auth import mint
from calsync_common.settings import HttpSettings

from .bookings_harness import Harness, at, serve, settings_for

METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})
#: As the connector's run: not `positive_data_acceptance`, since schema-valid data is often
#: refused by rules a schema cannot state (a slot off the grid, an unknown calendar).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
#: Per operation, pass and generation mode; derandomized, so a failure reproduces run after run.
EXAMPLES = 25
#: Operations that end the real booking or calendar run last.
LAST = (
    "DELETE /v1/sub-accounts/{sub_account_id}/bookings/{booking_id}",
    "DELETE /v1/sub-accounts/{sub_account_id}/calendars/{calendar_id}",
)


def test_the_document_is_a_valid_openapi_3_1_document() -> None:
    document = openapi.document()
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_the_document_names_exactly_the_routes_the_app_registers() -> None:
    settings = AvailabilitySettings(
        http=HttpSettings(port=0),
        database_url="postgresql://unused@localhost/unused",  # type: ignore[arg-type]
    )
    app = init_app(settings)  # nothing opens before the app starts
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None  # aiohttp's HEAD of each GET
    }
    documented = {
        (method.upper(), path)
        for path, item in openapi.document()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == registered


def _subclasses(cls: type[AvailabilityError]) -> Iterator[type[AvailabilityError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_problem_code_of_the_service_is_documented() -> None:
    import calsync_availability.domain.bookings  # noqa: F401 (defines the booking errors)

    codes = {error.code for error in _subclasses(AvailabilityError)}
    codes |= {"invalid_request", "invalid_query", "malformed_json", "unsupported_media_type"}
    codes |= {"idempotency_key_required", "invalid_idempotency_key", "unauthenticated"}
    codes -= {"availability_error", "invalid_calendar"}  # bases, never raised themselves
    text = json.dumps(openapi.document())
    assert {code for code in codes if code not in text} == set()


@pytest.fixture
async def h(infra: Any, fresh_database: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async for harness in serve(settings_for(infra.kafka_bootstrap, fresh_database, topic_prefix)):
        yield harness


@pytest.mark.integration
async def test_the_document_is_served_without_a_token(h: Harness) -> None:
    resp = await h.client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == openapi.document()


# --- schemathesis against the live service ---------------------------------------------------


@dataclass(frozen=True)
class Target:
    base_url: str
    #: Ids that exist: sub_account_id, user_id, calendar_id, booking_id.
    real: dict[str, str]
    own: dict[str, str]
    platform: dict[str, str]
    #: A booking body the calendar offers (so positive POSTs can succeed or meet 409).
    offered: dict[str, Any]


@dataclass(frozen=True)
class Pass:
    name: str
    headers: dict[str, str]
    path_parameters: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    modes: tuple[schemathesis.GenerationMode, ...] = tuple(schemathesis.GenerationMode)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _passes(operation: Any, target: Target) -> list[Pass]:
    if not operation.path.startswith("/v1/"):
        return [Pass("as documented", {})]
    names = {p.name for p in operation.path_parameters}
    positive = (schemathesis.GenerationMode.POSITIVE,)
    mine = {name: target.real[name] for name in names if name in target.real}
    passes = [
        Pass("generated ids, platform token", target.platform),
        Pass("real ids, the sub-account's token", target.own, mine),
        Pass("no token (401)", {}, modes=positive),
        Pass("not this caller's sub-account (403)", target.own, modes=positive),
    ]
    if operation.method.upper() == "POST" and operation.path.endswith("/bookings"):
        passes.append(Pass("an offered slot", target.own, mine, target.offered, positive))
    return passes


def _negatable(operation: Any, run: Pass) -> bool:
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
        except Unsatisfiable:
            # Negative mode found nothing to make invalid (every parameter left is a free-form
            # string, as a path segment always is): nothing was sent, nothing to judge.
            assert mode.is_negative
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all are reported
            failures.append(f"{operation.label} [{run.name}, {mode.value}]:\n{_describe(exc)}")
    return failures


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and not str(exc).startswith("Schemathesis"):
        return "\n".join([str(exc), *(_describe(e) for e in exc.exceptions)])
    return str(exc)


def _run_schemathesis(target: Target) -> tuple[list[str], int]:
    schema = schemathesis.openapi.from_dict(openapi.document())
    schema.config.generation.update(with_security_parameters=False)
    requests_made = 0

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        nonlocal requests_made
        requests_made += 1

    failures: list[str] = []
    with requests.Session() as session:
        session.trust_env = False  # no proxy variables between the test and the server
        operations = [
            schema[path][method.upper()]
            for path, item in openapi.document()["paths"].items()
            for method in item
            if method in METHODS
        ]
        operations.sort(key=lambda op: op.label in LAST)
        for operation in operations:
            for run in _passes(operation, target):
                failures += _explore(operation, run, target.base_url, session)
    return failures, requests_made


@pytest.mark.integration
# schemathesis' negative strategies call the `random` module while Hypothesis draws
# (schemathesis/specs/openapi/negative/__init__.py), which Hypothesis flags; not ours to change.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_schemathesis_finds_no_server_error_and_nothing_undocumented(h: Harness) -> None:
    await h.member("ann")
    calendar_id = await h.calendar("round_robin", ["ann"])
    booked = await h.book(calendar_id, at(9), at(10))
    assert booked.status == 201, await booked.text()
    auth = h.settings.auth
    target = Target(
        base_url=str(h.client.make_url("")).rstrip("/"),
        real={
            "sub_account_id": h.sub,
            "user_id": "ann",
            "calendar_id": calendar_id,
            "booking_id": (await booked.json())["id"],
        },
        own=_bearer(mint(auth, subject="platform-user", sub_account_id=h.sub)),
        platform=_bearer(mint(auth, subject="platform", service="platform")),
        offered={
            "booking_calendar_id": calendar_id,
            "start": at(11).isoformat(),
            "end": at(12).isoformat(),
            "title": "Intro call",
        },
    )
    began = time.monotonic()
    failures, requests_made = await asyncio.to_thread(_run_schemathesis, target)
    elapsed = time.monotonic() - began
    assert not failures, (
        f"{len(failures)} failure(s) in {requests_made} requests, {elapsed:.1f}s:\n\n"
        + "\n\n".join(failures)
    )
    assert requests_made > 500, requests_made  # the run did run
