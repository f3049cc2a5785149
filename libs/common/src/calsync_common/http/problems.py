"""RFC 9457 problem details with a stable ``code``; one middleware per app renders them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel, ValidationError

from calsync_common.transient import TRANSIENT

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error a client can act on: HTTP status, stable machine ``code``, human ``detail``."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        #: Response headers the problem needs (e.g. ``WWW-Authenticate`` on a 401).
        self.headers: dict[str, str] = dict(headers or {})
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://calsync.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


def problem_response(problem: Problem, request: web.Request | None = None) -> web.Response:
    # ``instance`` is a URI reference (RFC 9457 §3.1.5): the path as sent, still encoded.
    instance = request.rel_url.raw_path if request else None
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.body(instance)),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )


#: Maps a domain exception type to the Problem it becomes (the service supplies its table).
ProblemMapper = Callable[[Exception], Problem]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_content",
    429: "too_many_requests",
    503: "service_unavailable",
}


#: What a request gets while a dependency is away (see :data:`calsync_common.transient.TRANSIENT`).
DEPENDENCY_UNAVAILABLE = Problem(
    503,
    "dependency_unavailable",
    "A service this one depends on is unavailable; try again shortly",
    headers={"Retry-After": "2"},
)


def problem_middleware(
    mappers: Mapping[type[Exception], ProblemMapper] | None = None,
) -> Middleware:
    """Domain exceptions (via ``mappers``), aiohttp errors and crashes all become problem+json."""
    table = dict(mappers or {})

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            _refuse_nul(request)
            return await handler(request)
        except Problem as problem:
            return problem_response(problem, request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, "http_error")
            # Headers the status needs stay (Allow on 405, RFC 9110 §15.5.6).
            kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            return problem_response(Problem(exc.status, code, exc.reason, headers=kept), request)
        except Exception as exc:
            for exc_type, mapper in table.items():
                if isinstance(exc, exc_type):
                    return problem_response(mapper(exc), request)
            if isinstance(exc, TRANSIENT):
                # PostgreSQL or Kafka away (a restart, a failover), a timeout: the client's to
                # retry (a transaction cut before its commit did nothing; one cut during it is
                # why writes take an Idempotency-Key or an If-Match).
                log.warning(
                    "dependency unavailable",
                    extra={"path": request.path, "error": type(exc).__name__},
                )
                return problem_response(DEPENDENCY_UNAVAILABLE, request)
            log.exception("unhandled error", extra={"path": request.path})
            return problem_response(
                Problem(500, "internal_error", "Internal Server Error"), request
            )

    return middleware


async def read_json(request: web.Request) -> Any:
    """The JSON body, or a 400/415 problem (never a crash on bad input). Text with a NUL
    character is refused here: PostgreSQL cannot store it, so it would fail later."""
    if request.content_type != "application/json":
        raise Problem(415, "unsupported_media_type", "Expected application/json")
    try:
        body = await request.json()
    except ValueError as exc:
        raise Problem(400, "malformed_json", "Body is not valid JSON", str(exc)) from exc
    if _has_nul(body):
        raise Problem(400, "invalid_characters", "The request contains a NUL character")
    return body


M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated as ``model``, or 422 ``invalid_request`` listing each field error.

    Errors never echo the input (it may hold secrets) nor pydantic's documentation URLs.
    """
    raw = await read_json(request)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise Problem(
            422, "invalid_request", "The request body is not valid", errors=errors
        ) from None


def _refuse_nul(request: web.Request) -> None:
    """A NUL in the path or query can reach no database column: refused at the edge."""
    if "\x00" in request.path or "\x00" in request.query_string:
        raise Problem(400, "invalid_characters", "The request contains a NUL character")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
