"""Create and verify the catalogue's topics.

Services call :func:`ensure_topics` at start and :func:`check_topics` for readiness; tests call
them with new names. aiokafka's ``create_topics`` returns per-topic error codes instead of raising
them, so an impossible request (a replication factor above the broker count, an invalid config
value) would pass for success; here every code but ``TOPIC_ALREADY_EXISTS`` raises
:class:`TopicSetupError`. ``TOPIC_ALREADY_EXISTS`` means another process won the race, so that
topic is verified like any existing one.

Drift policy for existing topics. Only what the catalogue sets is compared (partition count and
the keys of ``Topic.config()``), and an existing topic is never altered: adding partitions moves
keys and changing the cleanup policy changes what the log means, which are operator decisions, not
something a service does when it starts.

* Fewer partitions than the catalogue: error. Keys are routed to other partitions than the
  catalogue says, and consumers lose the parallelism they were sized for.
* More partitions: warning. Somebody grew the topic on purpose; per-key order holds from then on.
* A different ``cleanup.policy``: error. Consumers of a compacted topic read the latest record per
  key as the state, which a ``delete`` topic drops after its retention; a ``delete`` topic turned
  ``compact`` silently loses every record but the latest per key.
* Any other config (``retention.ms``, ``extra_config``): warning, logged by ``ensure_topics`` and
  returned. The service works; only how far back a replay can go differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    LeaderNotAvailableError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from calsync_common.contracts.topics import Topic

log = logging.getLogger(__name__)

#: How long ensure_topics waits for a topic that exists to show up in the metadata it reads
#: (another process may have created it a moment ago).
SETTLE_TIMEOUT_S = 10.0
_UNKNOWN_TOPIC = str(UnknownTopicOrPartitionError.message)
#: Errors of a topic that exists but has not reached the broker's metadata yet.
_TRANSIENT = frozenset({_UNKNOWN_TOPIC, str(LeaderNotAvailableError.message)})
#: ``TopicProblem.error`` of an existing topic whose drift the policy calls an error.
DRIFT = "TOPIC_DRIFT"

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class TopicDrift:
    """One setting of an existing topic that differs from the catalogue."""

    topic: str
    setting: str  # "partitions" or a topic config key
    wanted: str
    actual: str | None  # None: the broker does not report the key
    severity: Severity

    def __str__(self) -> str:
        return f"{self.topic}: {self.setting} is {self.actual}, the catalogue wants {self.wanted}"


@dataclass(frozen=True)
class TopicProblem:
    """Why a topic is unusable: a Kafka error name (or ``TOPIC_DRIFT``) and its message."""

    topic: str
    error: str
    message: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.error}: {self.message}"


class TopicSetupError(Exception):
    """A topic could not be created, is missing, or differs from the catalogue in a way that
    changes what its consumers read. Lists every such topic, not only the first."""

    def __init__(self, problems: Sequence[TopicProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(map(str, self.problems)))


@dataclass(frozen=True)
class TopicReport:
    """What ``ensure_topics`` did: the topics it created, and the tolerated drift it found."""

    created: tuple[str, ...]
    drift: tuple[TopicDrift, ...]


@contextlib.asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="calsync-admin")
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap: str, topics: Iterable[Topic], *, replication: int = 1
) -> TopicReport:
    """Create the missing topics and verify the others; raise :class:`TopicSetupError` when one
    cannot be created or drifted in a way the policy above calls an error (no topic is altered).
    """
    wanted = {t.name: t for t in topics}
    async with _admin(bootstrap) as admin:
        existing = set(await admin.list_topics())
        missing = [t for name, t in wanted.items() if name not in existing]
        created: list[str] = []
        problems: list[TopicProblem] = []
        if missing:
            response = await admin.create_topics([_new_topic(t, replication) for t in missing])
            for entry in response.to_object()["topic_errors"]:
                name, code = entry["topic"], entry["error_code"]
                if code == 0:
                    created.append(name)
                elif code == TopicAlreadyExistsError.errno:
                    existing.add(name)  # created by another process meanwhile: verify it
                else:
                    problems.append(_broker_problem(name, code, entry.get("error_message")))
        verify = [t for name, t in wanted.items() if name in existing]
        verify_problems, drift = await _verify_settled(admin, verify)
    problems += verify_problems
    if problems:
        raise TopicSetupError(problems)
    for d in drift:
        log.warning(
            "topic differs from the catalogue",
            extra={"topic": d.topic, "setting": d.setting, "wanted": d.wanted, "actual": d.actual},
        )
    return TopicReport(created=tuple(created), drift=drift)


async def check_topics(bootstrap: str, topics: Iterable[Topic]) -> tuple[TopicDrift, ...]:
    """Readiness: every topic exists without error-level drift (two requests, nothing created).

    Raises :class:`TopicSetupError` otherwise; returns the tolerated drift, without logging it
    (a probe runs every few seconds).
    """
    async with _admin(bootstrap) as admin:
        problems, drift = await _verify(admin, list(topics))
    if problems:
        raise TopicSetupError(problems)
    return drift


def topics_readiness(bootstrap: str, topics: Iterable[Topic]) -> Callable[[], Awaitable[None]]:
    """:func:`check_topics` shaped as a ``/readyz`` check."""
    wanted = tuple(topics)

    async def check() -> None:
        await check_topics(bootstrap, wanted)

    return check


def _new_topic(topic: Topic, replication: int) -> NewTopic:
    return NewTopic(
        name=topic.name,
        num_partitions=topic.partitions,
        replication_factor=replication,
        topic_configs=topic.config(),
    )


def _broker_problem(topic: str, code: int, message: str | None) -> TopicProblem:
    error = for_code(code)
    return TopicProblem(topic, str(error.message), message or str(error.description))


async def _verify_settled(
    admin: Any, topics: Sequence[Topic]
) -> tuple[list[TopicProblem], tuple[TopicDrift, ...]]:
    """:func:`_verify`, polled while a topic is still propagating (bounded by the timeout)."""
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
    while True:
        problems, drift = await _verify(admin, topics)
        settling = any(p.error in _TRANSIENT for p in problems)
        if not settling or asyncio.get_running_loop().time() > deadline:
            return problems, drift
        await asyncio.sleep(0.1)  # metadata propagation has no event to wait on


async def _verify(
    admin: Any, topics: Sequence[Topic]
) -> tuple[list[TopicProblem], tuple[TopicDrift, ...]]:
    """One metadata and one describe-configs round trip for ``topics``."""
    if not topics:
        return [], ()
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, t.name, dict.fromkeys(t.config())) for t in topics
    ]
    # Metadata of all topics on purpose: a metadata request naming topics lets the broker
    # auto-create them (aiokafka asks for it), and a check must never create anything.
    metadata, config_responses = await asyncio.gather(
        admin.describe_topics(), admin.describe_configs(resources)
    )
    partitions = {m["topic"]: m for m in metadata}
    configs = {
        r["resource_name"]: r
        for response in config_responses
        for r in response.to_object()["resources"]
    }
    problems: list[TopicProblem] = []
    drift: list[TopicDrift] = []
    for topic in topics:
        errors, tolerated = _inspect(topic, partitions.get(topic.name), configs.get(topic.name))
        problems += errors
        drift += tolerated
    return problems, tuple(drift)


def _inspect(
    topic: Topic, meta: dict[str, Any] | None, cfg: dict[str, Any] | None
) -> tuple[list[TopicProblem], list[TopicDrift]]:
    if meta is None:
        return [TopicProblem(topic.name, _UNKNOWN_TOPIC, "the topic does not exist")], []
    problems = [_broker_problem(topic.name, meta["error_code"], None)] if meta["error_code"] else []
    if cfg is None:
        problems.append(TopicProblem(topic.name, _UNKNOWN_TOPIC, "no configuration returned"))
    elif cfg["error_code"]:
        problems.append(_broker_problem(topic.name, cfg["error_code"], cfg["error_message"]))
    if problems or cfg is None:
        return problems, []
    actual = {e["config_names"]: e["config_value"] for e in cfg["config_entries"]}
    drift = _drift(topic, len(meta["partitions"]), actual)
    errors = [TopicProblem(topic.name, DRIFT, _explain(d)) for d in drift if d.severity == "error"]
    return errors, [d for d in drift if d.severity == "warning"]


def _drift(topic: Topic, partitions: int, config: dict[str, str | None]) -> list[TopicDrift]:
    found = []
    if partitions != topic.partitions:
        severity: Severity = "error" if partitions < topic.partitions else "warning"
        found.append(
            TopicDrift(topic.name, "partitions", str(topic.partitions), str(partitions), severity)
        )
    for key, want in topic.config().items():
        got = config.get(key)
        if key == "cleanup.policy":
            if _policies(got) != _policies(want):
                found.append(TopicDrift(topic.name, key, want, got, "error"))
        elif got != want:
            found.append(TopicDrift(topic.name, key, want, got, "warning"))
    return found


def _policies(value: str | None) -> frozenset[str]:
    """``cleanup.policy`` is a list: ``compact,delete`` equals ``delete, compact``."""
    return frozenset(p.strip() for p in (value or "").split(",") if p.strip())


def _explain(drift: TopicDrift) -> str:
    if drift.setting == "partitions":
        why = "keys are routed to other partitions and consumers lose parallelism"
    else:
        why = "compaction semantics differ, so consumers would read a different state"
    return (
        f"{drift.setting} is {drift.actual}, the catalogue wants {drift.wanted}: {why}; "
        "change the topic or the catalogue deliberately"
    )
