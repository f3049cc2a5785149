"""``python -m calsync_connector``: run the connector service."""

from __future__ import annotations

from calsync_common.runtime import run
from calsync_connector.entrypoints.http import init_app
from calsync_connector.settings import ConnectorSettings


def main() -> None:
    settings = ConnectorSettings()  # database_url comes from the environment
    run("connector", settings, lambda: init_app(settings))


if __name__ == "__main__":
    main()
