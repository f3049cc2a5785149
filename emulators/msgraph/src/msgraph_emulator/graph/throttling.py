"""Outlook throttling and injected request faults for every ``/v1.0/`` route.

Per app (``client_id``) and **mailbox**, as Outlook enforces it. The mailbox is the one the path
addresses: ``/v1.0/users/{id|upn}/...`` counts against that user's mailbox (a delegate calling
the owner's calendar uses the owner's budget, shared with every other caller of that app), when
``{id|upn}`` names a user of the caller's tenant; anything else (``/me``, ``/subscriptions``,
an unknown or foreign user) counts against the signed-in user's mailbox. Resolving costs a
couple of dict look-ups (``UserRegistry`` indexes UPNs), so the middleware stays O(1).

* more than ``mailbox_concurrency`` (4) requests in flight → ``429 ApplicationThrottled``
  "Application is over its MailboxConcurrency limit.";
* more than ``mailbox_requests_per_10min`` in a sliding 10 minutes → ``429 TooManyRequests``
  "Please retry again later.".

Both carry ``Retry-After`` (seconds). ``$batch`` itself is not counted (its inner requests are).
Faults (``/_emulator/faults``) add latency (held inside the concurrency slot, like a slow
mailbox), answer ``429 TooManyRequests`` or ``503 serviceNotAvailable`` with ``Retry-After`` in
the configured form (seconds, fractional seconds, HTTP date); throttling can be switched off
per user. The per-user fault configuration that applies is the addressed mailbox's, like the
limits.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from msgraph_emulator.graph.auth import TokenContext, authenticate
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.state import EmulatorState

GRAPH_PREFIX = "/v1.0/"
USERS_PREFIX = "/v1.0/users/"
EXEMPT = frozenset({"/v1.0/$batch"})

MESSAGES = {
    "ApplicationThrottled": "Application is over its MailboxConcurrency limit.",
    "TooManyRequests": "Please retry again later.",
}


def mailbox_of(state: EmulatorState, ctx: TokenContext, path: str) -> str:
    """User id of the mailbox ``path`` addresses (see the module docstring); O(1)."""
    if not path.startswith(USERS_PREFIX):
        return ctx.user_id
    ref = path[len(USERS_PREFIX) :].partition("/")[0].strip()
    users = state.users
    user = users.get(ref) or users.get(ref.casefold()) or users.by_upn(ref)
    if user is None or user.tenant_id != ctx.tenant_id:
        return ctx.user_id  # Graph answers 404 ErrorInvalidUser; the caller's budget pays
    return user.id


def throttling_middleware(state: EmulatorState) -> Middleware:
    store = state.subscriptions

    @web.middleware
    async def throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith(GRAPH_PREFIX) or path in EXEMPT:
            return await handler(request)
        try:
            ctx = authenticate(request, state.signing_key, any_of=())
        except GraphError:
            return await handler(request)  # the route answers 401 itself
        mailbox = mailbox_of(state, ctx, path)
        faults = store.faults.for_user(mailbox)
        key = (ctx.client_id, mailbox)
        limiter = store.limiter if faults.throttling else None
        if limiter is not None:
            verdict = limiter.acquire(key)
            if not verdict.admitted:
                raise GraphError(
                    429,
                    verdict.code,
                    MESSAGES[verdict.code],
                    headers={"Retry-After": str(verdict.retry_after_s)},
                )
        try:
            if faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            if faults.chance(faults.throttle_rate):
                raise GraphError(
                    429,
                    "TooManyRequests",
                    MESSAGES["TooManyRequests"],
                    headers={"Retry-After": faults.retry_after()},
                )
            if faults.chance(faults.error_rate):
                raise GraphError(
                    503,
                    "serviceNotAvailable",
                    "Service Unavailable. You may repeat the request after a delay.",
                    headers={"Retry-After": faults.retry_after()},
                )
            return await handler(request)
        finally:
            if limiter is not None:
                limiter.release(key)

    return throttle
