"""A service process whose consumer loop hits a bug: it must stop and exit non-zero.

``python fatal_process.py BOOTSTRAP DSN TOPIC PORT``: served by ``calsync_common.runtime.run``.
"""

from __future__ import annotations

import sys

import asyncpg
from aiohttp import web

from calsync_common.kafka.consumer import ConsumerConfig, ConsumerRunner, Message
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres import Connection
from calsync_common.runtime import consumer_ctx, new_app, run
from calsync_common.settings import HttpSettings, ServiceSettings

RUNNER = web.AppKey("runner", ConsumerRunner)


async def never(_: Connection, __: Message) -> None:
    raise AssertionError("no message is expected")


def main(bootstrap: str, dsn: str, topic: str, port: str) -> None:
    settings = ServiceSettings(http=HttpSettings(port=int(port)), database_url=dsn)  # type: ignore[arg-type]

    def init_app() -> web.Application:
        app = new_app(lambda a: {"consumer": a[RUNNER].ready})

        def make_runner(_: web.Application) -> ConsumerRunner[Connection]:
            pool = asyncpg.create_pool(dsn)  # never awaited: the bug strikes first
            runner = ConsumerRunner(
                bootstrap,
                ConsumerConfig(group_id=f"fatal-{topic}", topics=[topic]),
                pool,  # type: ignore[arg-type]
                never,
                EventPublisher(bootstrap, client_id="fatal", source="/calsync/test"),
                bind=lambda c: c,
            )

            async def bug() -> None:
                raise TypeError("a programming error in the loop")

            runner._tend_partitions = bug  # type: ignore[method-assign]
            return runner

        app.cleanup_ctx.append(consumer_ctx(RUNNER, make_runner))
        return app

    run("fatal-test", settings, init_app)


if __name__ == "__main__":
    main(*sys.argv[1:5])
