"""Typed keys of what ``bootstrap`` puts on the app for the handlers."""

from __future__ import annotations

from aiohttp import web

from calsync_common.kafka.consumer import ConsumerRunner
from calsync_connector.adapters.graph import GraphClient
from calsync_connector.service_layer.connect import ConnectService
from calsync_connector.service_layer.connections import ConnectionsService
from calsync_connector.service_layer.tokens import AccessTokens

CONNECT = web.AppKey("connect", ConnectService)
CONNECTIONS = web.AppKey("connections", ConnectionsService)
TOKENS = web.AppKey("tokens", AccessTokens)
GRAPH = web.AppKey("graph", GraphClient)
FRESHNESS = web.AppKey("freshness_consumer", ConsumerRunner)
