"""One call wiring change notifications, throttling, ``$batch``, getSchedule and their control API
into the app, and the delivery engine into the app's lifecycle (``cleanup_ctx``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from msgraph_emulator.control import faults as control_faults
from msgraph_emulator.control import subscriptions as control_subscriptions
from msgraph_emulator.graph import batch, schedule, subscriptions
from msgraph_emulator.graph.notifications_engine import NOTIFIER, NotificationEngine
from msgraph_emulator.graph.schedule_mailboxes import MailboxesView
from msgraph_emulator.graph.throttling import throttling_middleware
from msgraph_emulator.state import EmulatorState


async def _engine_lifecycle(app: web.Application) -> AsyncIterator[None]:
    engine = app[NOTIFIER]
    await engine.start()
    yield
    await engine.stop()


def setup_subscriptions(app: web.Application, state: EmulatorState) -> None:
    state.subscriptions.configure(state.settings)
    state.subscriptions.mailbox_view = MailboxesView(state.mailboxes)
    app[NOTIFIER] = NotificationEngine(state)
    app.middlewares.append(throttling_middleware(state))
    subscriptions.add_routes(app)
    batch.add_routes(app)
    schedule.add_routes(app)
    control_subscriptions.add_routes(app)
    control_faults.add_routes(app)
    app.cleanup_ctx.append(_engine_lifecycle)
