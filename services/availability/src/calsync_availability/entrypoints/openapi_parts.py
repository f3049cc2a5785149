"""Pieces the API modules build their OpenAPI path items from (``openapi.py`` merges them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from calsync_common.http.problems import PROBLEM_JSON

REF = "#/components/schemas/{model}"


def schemas(*models: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
    """Component schemas of ``models`` and of the models they nest, referenced by name."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def json_content(schema: str) -> dict[str, Any]:
    """A JSON body of the component ``schema``."""
    return {"application/json": {"schema": {"$ref": REF.format(model=schema)}}}


def problem(description: str) -> dict[str, Any]:
    """An RFC 9457 problem response."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
    }


#: Answers every route under a sub-account may give whatever it asks: about its token, and
#: while PostgreSQL or Kafka is away.
AUTH_PROBLEMS = {
    "401": problem("No valid bearer token (unauthenticated)"),
    "403": problem("The token does not grant this sub-account (forbidden)"),
    "503": problem(
        "PostgreSQL or Kafka is unavailable (a restart, a failover) or timed out, or what the"
        " request reads kept changing under it (a booking calendar replaced again and again);"
        " try again after Retry-After (dependency_unavailable)"
    ),
}
#: Answers of a route that reads a JSON body, before its own rules.
BODY_PROBLEMS = {
    "400": problem("Malformed JSON, or a NUL character (malformed_json, invalid_characters)"),
    "415": problem("Not application/json (unsupported_media_type)"),
}
