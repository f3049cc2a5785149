"""``python -m calsync_availability``: run the availability service."""

from __future__ import annotations

from calsync_availability.entrypoints.http import init_app
from calsync_availability.settings import AvailabilitySettings
from calsync_common.runtime import run


def main() -> None:
    settings = AvailabilitySettings()  # database_url comes from the environment
    run("availability", settings, lambda: init_app(settings))


if __name__ == "__main__":
    main()
