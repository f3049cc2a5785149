"""`make migrate`: apply every service's migrations to its database (URLs from the env)."""

from __future__ import annotations

import asyncio
import os
from importlib import import_module
from pathlib import Path

from calsync_common.postgres.migrations import upgrade

SERVICES = {
    "connector": ("calsync_connector", "CONNECTOR_DATABASE_URL"),
    "sync-worker": ("calsync_sync_worker", "SYNC_WORKER_DATABASE_URL"),
    "availability": ("calsync_availability", "AVAILABILITY_DATABASE_URL"),
}


async def main() -> None:
    for service, (package, env) in SERVICES.items():
        dsn = os.environ.get(env)
        if not dsn:
            raise SystemExit(f"{env} is not set (run through deploy/local/with-env.sh)")
        pkg_dir = Path(import_module(package).__file__ or "").parent
        await upgrade(dsn, service, pkg_dir / "migrations" / "versions")
        print(f"{service}: migrated")


if __name__ == "__main__":
    asyncio.run(main())
