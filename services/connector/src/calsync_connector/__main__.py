"""``python -m calsync_connector``: run the connector service."""

from __future__ import annotations

from calsync_common.runtime import run
from calsync_connector.entrypoints.http import init_app
from calsync_connector.settings import ConnectorSettings


def main() -> None:
    settings = ConnectorSettings()  # database_url comes from the environment
    # The OAuth callback may carry the authorization code in its query: never in a span.
    run("connector", settings, lambda: init_app(settings), untraced_paths=("^/oauth/callback",))


if __name__ == "__main__":
    main()
