"""Booking calendars of a sub-account: calendars, members and working hours (CRUD).

All routes live under ``/v1/sub-accounts/{sub_account_id}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

#: OpenAPI path items of this module's routes (merged by openapi.document).
PATHS: dict[str, Any] = {}
#: Component schemas the path items refer to (#/components/schemas/...).
SCHEMAS: dict[str, Any] = {}


def setup(app: web.Application) -> None:
    """Register this module's routes on app."""
