"""Create the catalogue's topics (idempotent): services call it at start, tests with new names."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from calsync_common.contracts.topics import Topic


async def ensure_topics(bootstrap: str, topics: Iterable[Topic], *, replication: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="calsync-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=t.name,
                num_partitions=t.partitions,
                replication_factor=replication,
                topic_configs=t.config(),
            )
            for t in topics
            if t.name not in existing
        ]
        if new:
            # Another process may create one between list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()
