"""OpenAPI path items of the routes every process serves without a token: liveness, readiness,
metrics (``calsync_common.http.health``) and this document (``openapi.serve``). Documented, as
the connector does, so that the document names every route the app registers."""

from __future__ import annotations

from typing import Any

_PUBLIC: list[dict[str, Any]] = []  # no security requirement: probes and scrapers carry no token


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_READINESS = {"$ref": "#/components/schemas/Readiness"}

PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "tags": ["operations"],
            "summary": "Liveness",
            "description": "503 when a loop the process cannot live without has died.",
            "security": _PUBLIC,
            "responses": {
                "200": _json(
                    "Alive.",
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                        "additionalProperties": False,
                    },
                ),
                "503": _json(
                    "Something died for good.",
                    {
                        "type": "object",
                        "required": ["status", "fatal"],
                        "properties": {
                            "status": {"const": "failed"},
                            "fatal": {"type": "array", "items": {"type": "string"}},
                        },
                        "additionalProperties": False,
                    },
                ),
            },
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "tags": ["operations"],
            "summary": "Readiness",
            "description": (
                "Every dependency check (PostgreSQL, Kafka, topics, outbox relay): `ok`, or the "
                "reason it failed."
            ),
            "security": _PUBLIC,
            "responses": {
                "200": _json("Ready.", _READINESS),
                "503": _json("Not ready; `checks` names what failed and why.", _READINESS),
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "tags": ["operations"],
            "summary": "Prometheus metrics",
            "security": _PUBLIC,
            "responses": {
                "200": {
                    "description": "The Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "tags": ["operations"],
            "summary": "This document",
            "security": _PUBLIC,
            "responses": {
                "200": _json("The OpenAPI 3.1 document of this API.", {"type": "object"})
            },
        }
    },
}

SCHEMAS: dict[str, Any] = {
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "checks": {
                "type": "object",
                "description": "Check name → `ok` or the reason it failed.",
                "additionalProperties": {"type": "string"},
            },
        },
        "additionalProperties": False,
    }
}
