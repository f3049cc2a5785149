"""``python -m calsync_sync_worker``: run the sync-worker service."""

from __future__ import annotations

from calsync_common.runtime import run
from calsync_sync_worker.entrypoints.http import init_app
from calsync_sync_worker.settings import SyncWorkerSettings

#: Graph's webhook calls carry no trace context and come by the thousand: a server span each cost
#: as much CPU as the handler itself (the notifications get producer spans all the same).
UNTRACED = ("^/webhooks/graph/",)


def main() -> None:
    settings = SyncWorkerSettings()  # database_url comes from the environment
    run("sync-worker", settings, lambda: init_app(settings), untraced_paths=UNTRACED)


if __name__ == "__main__":
    main()
