"""``python -m calsync_sync_worker``: run the sync-worker service."""

from __future__ import annotations

from calsync_common.runtime import run
from calsync_sync_worker.entrypoints.http import init_app
from calsync_sync_worker.settings import SyncWorkerSettings


def main() -> None:
    settings = SyncWorkerSettings()  # database_url comes from the environment
    run("sync-worker", settings, lambda: init_app(settings))


if __name__ == "__main__":
    main()
