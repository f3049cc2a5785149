"""``python -m msgraph_emulator``: the emulator over HTTPS with JSON logs."""

from __future__ import annotations

import logging
import sys

from aiohttp import web
from pythonjsonlogger.json import JsonFormatter

from msgraph_emulator import tls
from msgraph_emulator.app import freeze_startup_heap, init_app
from msgraph_emulator.settings import EmulatorSettings

log = logging.getLogger("msgraph_emulator")


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def main() -> None:
    settings = EmulatorSettings()
    configure_logging(settings.log_level)
    material = tls.prepare(settings.data_dir, tls.server_names(settings.host, settings.public_url))
    where = {
        "base_url": settings.base_url,
        "ca_file": str(material.ca_path.resolve()),
        "hint": "trust ca_file (verify=/REQUESTS_CA_BUNDLE/SSL_CERT_FILE) to call the emulator",
    }
    log.info("msgraph emulator starting", extra=where)

    def announce(_: str) -> None:
        # run_app calls this once the socket listens: the readiness line supervisors wait for.
        log.info("msgraph emulator listening", extra=where)

    app = init_app(settings)
    freeze_startup_heap()  # after seeding: full GC passes skip the seeded state
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=material.server_context(),
        print=announce,
    )


if __name__ == "__main__":
    main()
