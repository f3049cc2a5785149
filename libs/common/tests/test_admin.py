"""Topic setup against the real broker: errors raised, drift reported, races tolerated."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import pytest

from calsync_common.contracts.topics import BOOKINGS, CONNECTIONS, DAY_MS
from calsync_common.kafka.admin import (
    DRIFT,
    TopicDrift,
    TopicSetupError,
    check_topics,
    ensure_topics,
    topics_readiness,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def bootstrap(infra: object) -> str:
    return infra.kafka_bootstrap  # type: ignore[attr-defined,no-any-return]


async def test_creating_twice_is_idempotent(bootstrap: str, unique: str) -> None:
    delete = replace(BOOKINGS, name=f"test.admin.delete.{unique}")
    compact = replace(CONNECTIONS, name=f"test.admin.compact.{unique}")

    first = await ensure_topics(bootstrap, [delete, compact])
    second = await ensure_topics(bootstrap, [delete, compact])

    assert sorted(first.created) == sorted([delete.name, compact.name])
    assert first.drift == ()
    assert second.created == ()
    assert second.drift == ()
    assert await check_topics(bootstrap, [delete, compact]) == ()


async def test_replication_beyond_the_cluster_raises_naming_the_topic(
    bootstrap: str, unique: str
) -> None:
    topic = replace(BOOKINGS, name=f"test.admin.rf.{unique}")

    with pytest.raises(TopicSetupError, match=re.escape(topic.name)) as raised:
        await ensure_topics(bootstrap, [topic], replication=3)

    [problem] = raised.value.problems
    assert (problem.topic, problem.error) == (topic.name, "INVALID_REPLICATION_FACTOR")
    assert "replication factor" in problem.message
    with pytest.raises(TopicSetupError, match="UNKNOWN_TOPIC_OR_PARTITION"):
        await check_topics(bootstrap, [topic])


async def test_invalid_config_raises_and_the_valid_topics_are_still_created(
    bootstrap: str, unique: str
) -> None:
    bad = replace(
        BOOKINGS, name=f"test.admin.badcfg.{unique}", extra_config={"max.message.bytes": "lots"}
    )
    good = replace(BOOKINGS, name=f"test.admin.goodcfg.{unique}")

    with pytest.raises(TopicSetupError) as raised:
        await ensure_topics(bootstrap, [bad, good])

    assert [(p.topic, p.error) for p in raised.value.problems] == [(bad.name, "INVALID_CONFIG")]
    assert "max.message.bytes" in str(raised.value)
    assert await check_topics(bootstrap, [good]) == ()


async def test_fewer_partitions_than_the_catalogue_is_an_error(bootstrap: str, unique: str) -> None:
    topic = replace(BOOKINGS, name=f"test.admin.fewer.{unique}", partitions=3)
    await ensure_topics(bootstrap, [replace(topic, partitions=1)])

    with pytest.raises(TopicSetupError, match="partitions is 1, the catalogue wants 3") as raised:
        await ensure_topics(bootstrap, [topic])
    assert [(p.topic, p.error) for p in raised.value.problems] == [(topic.name, DRIFT)]
    with pytest.raises(TopicSetupError, match=re.escape(topic.name)):
        await check_topics(bootstrap, [topic])
    with pytest.raises(TopicSetupError):
        await topics_readiness(bootstrap, [topic])()


async def test_more_partitions_than_the_catalogue_is_a_warning(bootstrap: str, unique: str) -> None:
    topic = replace(BOOKINGS, name=f"test.admin.more.{unique}", partitions=1)
    await ensure_topics(bootstrap, [replace(topic, partitions=2)])

    report = await ensure_topics(bootstrap, [topic])

    assert report.drift == (TopicDrift(topic.name, "partitions", "1", "2", "warning"),)


async def test_a_different_cleanup_policy_is_an_error(bootstrap: str, unique: str) -> None:
    compact = replace(CONNECTIONS, name=f"test.admin.policy.{unique}")
    await ensure_topics(bootstrap, [replace(compact, cleanup="delete", retention_ms=DAY_MS)])

    with pytest.raises(TopicSetupError, match=r"cleanup\.policy is delete") as raised:
        await ensure_topics(bootstrap, [compact])
    assert [p.error for p in raised.value.problems] == [DRIFT]


async def test_retention_drift_is_reported_not_raised(bootstrap: str, unique: str) -> None:
    topic = replace(BOOKINGS, name=f"test.admin.retention.{unique}", retention_ms=2 * DAY_MS)
    await ensure_topics(bootstrap, [replace(topic, retention_ms=DAY_MS)])

    report = await ensure_topics(bootstrap, [topic])

    expected = TopicDrift(topic.name, "retention.ms", str(2 * DAY_MS), str(DAY_MS), "warning")
    assert report.created == ()
    assert report.drift == (expected,)
    assert await check_topics(bootstrap, [topic]) == (expected,)
    await topics_readiness(bootstrap, [topic])()  # tolerated drift keeps the service ready


async def test_concurrent_setup_from_several_tasks_all_succeeds(
    bootstrap: str, unique: str
) -> None:
    topics = [
        replace(BOOKINGS, name=f"test.admin.race.a.{unique}"),
        replace(CONNECTIONS, name=f"test.admin.race.b.{unique}"),
    ]

    reports = await asyncio.gather(*(ensure_topics(bootstrap, topics) for _ in range(6)))

    created = [name for r in reports for name in r.created]
    assert sorted(created) == sorted(t.name for t in topics)  # each created exactly once
    assert all(r.drift == () for r in reports)


async def test_check_reports_a_missing_topic_and_does_not_create_it(
    bootstrap: str, unique: str
) -> None:
    topic = replace(BOOKINGS, name=f"test.admin.missing.{unique}")

    for _ in range(2):
        with pytest.raises(
            TopicSetupError, match=re.escape(f"{topic.name}: UNKNOWN_TOPIC_OR_PARTITION")
        ):
            await check_topics(bootstrap, [topic])
