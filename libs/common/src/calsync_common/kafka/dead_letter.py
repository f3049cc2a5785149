"""What a dead-lettered copy carries: the original bytes, and where and why it failed."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from calsync_common.kafka.tracing import Headers


def dead_letter_headers(
    record: ConsumerRecord, group_id: str, error: BaseException, attempts: int
) -> Headers:
    kept = [h for h in (record.headers or ()) if h[0] not in ("traceparent", "tracestate")]
    return [
        *kept,
        ("x-dlq-topic", record.topic.encode()),
        ("x-dlq-partition", str(record.partition).encode()),
        ("x-dlq-offset", str(record.offset).encode()),
        ("x-dlq-group", group_id.encode()),
        ("x-dlq-attempts", str(attempts).encode()),
        ("x-dlq-error", f"{type(error).__name__}: {error}"[:500].encode()),
    ]
