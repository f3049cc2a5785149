"""Typed keys of what ``bootstrap`` puts on the app."""

from __future__ import annotations

from aiohttp import web

from calsync_common.kafka.consumer import ConsumerRunner
from calsync_sync_worker.adapters.graph_client import GraphClient
from calsync_sync_worker.entrypoints.webhooks import GraphWebhooks
from calsync_sync_worker.service_layer.delta import DeltaRunner
from calsync_sync_worker.service_layer.subscriptions import SubscriptionManager
from calsync_sync_worker.service_layer.write_back import WriteBackRunner

WEBHOOKS = web.AppKey("webhooks", GraphWebhooks)
CONNECTIONS_CONSUMER = web.AppKey("connections_consumer", ConsumerRunner)
GRAPH = web.AppKey("graph", GraphClient)
SUBSCRIPTIONS = web.AppKey("subscriptions", SubscriptionManager)
DELTA = web.AppKey("delta", DeltaRunner)
NOTIFICATIONS_CONSUMER = web.AppKey("notifications_consumer", ConsumerRunner)
WRITE_BACK = web.AppKey("write_back", WriteBackRunner)
WRITE_BACK_CONSUMER = web.AppKey("write_back_consumer", ConsumerRunner)
