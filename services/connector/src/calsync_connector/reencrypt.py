"""``python -m calsync_connector.reencrypt``: re-seal stored tokens under the active key.

The last step of a key rotation, run once every replica has the new active key (a replica still
on the old one would go on writing rows under it). Prints one JSON line of counts per table.
Safe to rerun: rows already under the active key are skipped.
"""

from __future__ import annotations

import asyncio
import json
from typing import Protocol

from calsync_common.postgres.pool import open_pool
from calsync_connector.adapters.token_cipher import (
    OAUTH_FLOWS,
    TOKEN_CACHES,
    TokenCipher,
    TokenCipherSettings,
    reencrypt,
)
from calsync_connector.settings import ConnectorSettings


class ReencryptSettings(Protocol):
    """What this command reads of ``ConnectorSettings``."""

    @property
    def tokens(self) -> TokenCipherSettings: ...

    @property
    def dsn(self) -> str: ...


async def run(settings: ReencryptSettings) -> dict[str, object]:
    cipher = TokenCipher(settings.tokens)
    report: dict[str, object] = {"active_key_id": cipher.active_key_id}
    async with open_pool(settings.dsn, min_size=1, max_size=2) as pool:
        for table in (TOKEN_CACHES, OAUTH_FLOWS):
            report[table.name] = await reencrypt(pool, cipher, table)
    return report


def main() -> None:
    print(json.dumps(asyncio.run(run(ConnectorSettings()))), flush=True)


if __name__ == "__main__":
    main()
