"""The official msgraph-sdk parses every calendar shape the emulator serves, leaving nothing in
``additional_data`` but OData annotations the real service also sends; a GraphServiceClient
pointed at the HTTPS emulator lists calendars, creates an event and pages through a delta round.
"""

from __future__ import annotations

import ssl
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest

# kiota-abstractions warns (DeprecationWarning) while its own request builders are imported.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from kiota_serialization_json.json_parse_node import JsonParseNode
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.calendar import Calendar
    from msgraph.generated.models.calendar_collection_response import CalendarCollectionResponse
    from msgraph.generated.models.event import Event
    from msgraph.generated.models.event_collection_response import EventCollectionResponse
    from msgraph.generated.models.event_type import EventType
    from msgraph.generated.models.free_busy_status import FreeBusyStatus
    from msgraph.generated.models.mailbox_settings import MailboxSettings
    from msgraph.generated.users.item.calendar_view.delta.delta_get_response import DeltaGetResponse
    from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import (
        DeltaRequestBuilder,
    )
    from msgraph.graph_request_adapter import options as SDK_OPTIONS  # incl. /me URL rewrite
    from msgraph_core import GraphClientFactory

from msgraph_emulator.graph.auth import mint_access_token
from msgraph_emulator.users import User

ANNOTATIONS = {"@odata.etag", "@odata.context", "@removed"}
WINDOW = "startDateTime=2024-06-01T00:00:00Z&endDateTime=2024-07-01T00:00:00Z"


def leftovers(obj: Any, path: str = "$") -> list[str]:
    """Every key the SDK could not map to a model property (annotations excepted)."""
    found: list[str] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            found += leftovers(item, f"{path}[{i}]")
    elif hasattr(obj, "additional_data"):
        found += [f"{path}.{k}" for k in obj.additional_data if k not in ANNOTATIONS]
        for name, value in vars(obj).items():
            if name != "additional_data" and value is not None:
                found += leftovers(value, f"{path}.{name}")
    return found


def parse(data: Any, model: Any) -> Any:
    parsed = JsonParseNode(data).get_object_value(model)
    assert leftovers(parsed) == []
    return parsed


async def _seed(g: Any) -> dict[str, Any]:
    def ev(day: int, **extra: Any) -> dict[str, Any]:
        return {
            "subject": f"d{day}",
            "body": {"contentType": "html", "content": "<b>x</b>"},
            "location": {"displayName": "Room 1"},
            "attendees": [{"emailAddress": {"address": "a@x.example", "name": "A"}}],
            "start": {"dateTime": f"2024-06-{day:02d}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"2024-06-{day:02d}T10:00:00", "timeZone": "UTC"},
            **extra,
        }

    single = await g.post("/v1.0/me/events", ev(3, showAs="workingElsewhere", transactionId="t1"))
    series = await g.post(
        "/v1.0/me/events",
        ev(4)
        | {
            "recurrence": {
                "pattern": {"type": "weekly", "daysOfWeek": ["tuesday", "thursday"]},
                "range": {"type": "numbered", "startDate": "2024-06-04", "numberOfOccurrences": 3},
            }
        },
    )
    allday = {
        "isAllDay": True,
        "start": {"dateTime": "2024-06-10T00:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2024-06-11T00:00:00", "timeZone": "UTC"},
    }
    await g.post("/v1.0/me/events", ev(10) | allday)
    return {"single": single, "series": series}


async def test_sdk_parses_every_shape(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    made = await _seed(g)
    parse(await g.get("/v1.0/me/mailboxSettings"), MailboxSettings)
    calendars = parse(await g.get("/v1.0/me/calendars"), CalendarCollectionResponse)
    assert calendars.value[0].can_edit is True and calendars.value[0].owner.address
    parse(await g.get("/v1.0/me/calendar"), Calendar)
    single = parse(await g.get(f"/v1.0/me/events/{made['single']['id']}"), Event)
    assert single.show_as == FreeBusyStatus.WorkingElsewhere and single.transaction_id == "t1"
    master = parse(await g.get(f"/v1.0/me/events/{made['series']['id']}"), Event)
    assert (
        master.type == EventType.SeriesMaster and master.recurrence.range.number_of_occurrences == 3
    )
    view = parse(await g.get(f"/v1.0/me/calendarView?{WINDOW}"), EventCollectionResponse)
    kinds = {e.type for e in view.value}
    assert kinds == {EventType.SingleInstance, EventType.Occurrence}
    occ = next(e for e in view.value if e.type == EventType.Occurrence)
    assert occ.original_start is not None and occ.series_master_id == master.id
    exc_status, _, _ = await g.call("PATCH", f"/v1.0/me/events/{occ.id}", {"subject": "moved"})
    assert exc_status == 200
    exception = parse(await g.get(f"/v1.0/me/events/{occ.id}"), Event)
    assert exception.type == EventType.Exception
    first = await g.get(f"/v1.0/me/calendarView/delta?{WINDOW}")
    page = parse(first, DeltaGetResponse)
    assert page.odata_delta_link and {e.type for e in page.value} == {
        EventType.SingleInstance,
        EventType.Occurrence,
        EventType.Exception,
    }
    await g.call("DELETE", f"/v1.0/me/events/{made['single']['id']}")
    second = parse(await g.get(first["@odata.deltaLink"]), DeltaGetResponse)
    (removed,) = second.value
    assert removed.id == made["single"]["id"]
    assert removed.additional_data == {"@removed": {"reason": "deleted"}}


class _StaticToken(AccessTokenProvider):  # type: ignore[misc]
    def __init__(self, token: str, host: str) -> None:
        self.token, self.host = token, host

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([self.host])


# The SDK imports its request builders lazily, and they warn about their own deprecated classes.
@pytest.mark.filterwarnings("ignore:This class is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:GetQueryParameters is deprecated:DeprecationWarning")
async def test_graph_service_client_against_https_emulator(https_emulator: Any) -> None:
    state = https_emulator.state
    uid = str(uuid.uuid4())
    user = state.users.add(
        User(uid, str(uuid.uuid4()), f"sdk.{uid[:8]}@contoso.example", "Sdk User")
    )
    token = mint_access_token(
        state.signing_key,
        issuer_base=https_emulator.base_url,
        user_id=user.id,
        tenant_id=user.tenant_id,
        client_id=str(uuid.uuid4()),
        scopes=["Calendars.ReadWrite"],
        lifetime_s=600,
    )
    auth = BaseBearerTokenAuthenticationProvider(_StaticToken(token, "127.0.0.1"))
    trust = ssl.create_default_context(cafile=str(https_emulator.ca_path))

    # The SDK wraps the client's transport in its middleware and does not close the inner one.
    transport = httpx.AsyncHTTPTransport(verify=trust)
    async with httpx.AsyncClient(transport=transport) as http:
        adapter = GraphRequestAdapter(
            auth,
            GraphClientFactory.create_with_default_middleware(client=http, options=SDK_OPTIONS),
        )
        adapter.base_url = f"{https_emulator.base_url}/v1.0"
        client = GraphServiceClient(request_adapter=adapter)
        calendars = await client.me.calendars.get()
        assert calendars is not None and [c.name for c in calendars.value or []] == ["Calendar"]
        body = JsonParseNode(
            {
                "subject": "via sdk",
                "start": {"dateTime": "2024-06-05T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2024-06-05T10:00:00", "timeZone": "UTC"},
            }
        ).get_object_value(Event)
        created = await client.me.events.post(body)
        assert created is not None and created.id and created.subject == "via sdk"
        config = DeltaRequestBuilder.DeltaRequestBuilderGetRequestConfiguration(
            query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time="2024-06-01T00:00:00Z", end_date_time="2024-07-01T00:00:00Z"
            )
        )
        config.headers.add("Prefer", "odata.maxpagesize=1")
        await client.me.events.post(body)
        page = await client.me.calendar_view.delta.get(request_configuration=config)
        seen = []
        while page is not None:
            seen += [e.subject for e in page.value or []]
            if page.odata_delta_link:
                break
            assert page.odata_next_link
            page = await client.me.calendar_view.delta.with_url(page.odata_next_link).get()
        assert seen == ["via sdk", "via sdk"]
        assert page is not None and "$deltatoken=" in (page.odata_delta_link or "")
        # The same mailbox addressed as /users/{userPrincipalName} (how a sync worker may call).
        mailbox = client.users.by_user_id(user.user_principal_name.upper())
        cals = await mailbox.calendars.get()
        assert cals is not None and [c.id for c in cals.value or []] == [
            c.id for c in calendars.value or []
        ]
        by_user = await mailbox.calendar_view.delta.get(request_configuration=config)
        assert by_user is not None and [e.subject for e in by_user.value or []] == ["via sdk"]
    await transport.aclose()
