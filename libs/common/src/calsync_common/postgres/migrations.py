"""Versioned SQL migrations per service, applied with Alembic over asyncpg.

Alembic is the maintained tool that works with asyncpg (through SQLAlchemy's asyncpg dialect).
Each service keeps its revisions in its own ``migrations/`` folder and its own version table;
the environment script is shared (``calsync_common/postgres/alembic/env.py``) and takes a
PostgreSQL advisory lock so replicas starting together migrate once.

The plumbing's own tables (offsets, sequences, outbox) have a frozen chain of their own in
``calsync_common/postgres/plumbing``, applied first, with the version table
``alembic_version_<service>_plumbing``. Revisions never import live DDL: they are history.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config

PLUMBING_VERSIONS = Path(str(resources.files("calsync_common.postgres") / "plumbing"))


def alembic_config(dsn: str, service: str, versions_dir: Path, *, chain: str = "") -> Config:
    cfg = Config()
    script_dir = resources.files("calsync_common.postgres") / "alembic"
    cfg.set_main_option("script_location", str(script_dir))
    cfg.set_main_option("version_locations", str(versions_dir))
    cfg.set_main_option("path_separator", "os")
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )
    cfg.attributes["url"] = url
    suffix = f"_{chain}" if chain else ""
    cfg.attributes["version_table"] = f"alembic_version_{service.replace('-', '_')}{suffix}"
    return cfg


def upgrade_sync(dsn: str, service: str, versions_dir: Path, revision: str = "head") -> None:
    """The plumbing chain to its head, then the service's chain to ``revision``."""
    command.upgrade(alembic_config(dsn, service, PLUMBING_VERSIONS, chain="plumbing"), "head")
    command.upgrade(alembic_config(dsn, service, versions_dir), revision)


async def upgrade_plumbing(dsn: str, service: str) -> None:
    """Only the plumbing chain (tests of the plumbing itself use it)."""
    cfg = alembic_config(dsn, service, PLUMBING_VERSIONS, chain="plumbing")
    await asyncio.to_thread(command.upgrade, cfg, "head")


async def upgrade(dsn: str, service: str, versions_dir: Path, revision: str = "head") -> None:
    """Apply migrations from a running loop (Alembic's env runs its own loop in a thread)."""
    await asyncio.to_thread(upgrade_sync, dsn, service, versions_dir, revision)
