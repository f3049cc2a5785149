"""The control API's OpenAPI document: complete (every ``/_emulator`` route, nothing more),
valid OpenAPI 3.1, served, and its examples work against a sandbox emulator."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from msgraph_emulator.control.openapi import spec

Client = TestClient  # type: ignore[type-arg]
METHODS = {"get", "put", "post", "patch", "delete"}

#: Operations whose documented example request is sent, in this order, to a fresh sandbox.
EXAMPLES = [
    ("post", "/_emulator/users"),
    ("get", "/_emulator/users/{user}"),
    ("post", "/_emulator/identity/apps"),
    ("post", "/_emulator/identity/preapprove"),
    ("get", "/_emulator/users/{user}/consents"),
    ("post", "/_emulator/users/{user_id}/calendars"),
    ("post", "/_emulator/users/{user_id}/calendars/{calendar_id}/events"),
    ("patch", "/_emulator/users/{user_id}/calendars/{calendar_id}"),
    ("get", "/_emulator/users/{user_id}/calendars/{calendar_id}/busy"),
    ("put", "/_emulator/faults/users/{user_id}"),
    ("get", "/_emulator/faults"),
    ("get", "/_emulator/deliveries"),
    ("post", "/_emulator/subscriptions/sweep"),
    ("post", "/_emulator/users/{user}/revoke-sessions"),
    ("put", "/_emulator/behaviour"),
    ("get", "/_emulator/behaviour"),
    ("post", "/_emulator/reset"),
]


def registered(client: Client) -> set[tuple[str, str]]:
    routes = set()
    for route in client.app.router.routes():  # type: ignore[union-attr]
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/_emulator") and route.method != "HEAD":
            routes.add((route.method.lower(), path))
    return routes


def documented() -> set[tuple[str, str]]:
    return {(m, p) for p, ops in spec()["paths"].items() for m in ops if m in METHODS}


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """Validate against a spec schema, resolving ``#/components/...`` in the spec itself."""
    return Draft202012Validator({**schema, "components": spec()["components"]})


def example_request(method: str, path: str) -> tuple[str, dict[str, str], Any]:
    operation = spec()["paths"][path][method]
    url, query = path, {}
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", str(param["example"]))
        elif param.get("required"):
            query[param["name"]] = str(param["example"])
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    return url, query, content["example"] if content else None


def test_the_spec_documents_exactly_the_registered_routes(client: Client) -> None:
    routes = registered(client)
    assert len(routes) > 30
    assert routes - documented() == set(), "routes missing from control/openapi.json"
    assert documented() - routes == set(), "spec entries without a route"


def test_the_spec_is_valid_openapi_31_with_examples() -> None:
    document = spec()
    validate(document)  # raises on an invalid document
    assert document["openapi"].startswith("3.1")
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            assert operation["responses"], (method, path)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                schema_validator(body["schema"]).validate(body["example"])
            for response in operation["responses"].values():
                media = response.get("content", {}).get("application/json", {})
                if "example" in media:
                    schema_validator(media["schema"]).validate(media["example"])


async def test_the_spec_is_served(client: Client) -> None:
    resp = await client.get("/_emulator/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == spec()


async def test_documented_examples_succeed(sandbox_client: Client) -> None:
    done = 0
    for method, path in EXAMPLES:
        url, query, body = example_request(method, path)
        resp = await sandbox_client.request(method.upper(), url, params=query, json=body)
        responses = spec()["paths"][path][method]["responses"]
        assert str(resp.status) in responses and resp.status < 300, (method, url, await resp.text())
        media = responses[str(resp.status)].get("content", {}).get("application/json")
        if media is not None:
            schema_validator(media["schema"]).validate(await resp.json())
        done += 1
    assert done == len(EXAMPLES)
