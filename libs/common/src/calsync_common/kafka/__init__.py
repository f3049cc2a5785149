"""Kafka plumbing: idempotent producer, consumer runner with offsets in PostgreSQL, topics."""
