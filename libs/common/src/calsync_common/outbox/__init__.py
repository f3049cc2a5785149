"""Transactional outbox: events written with the state change, relayed to Kafka in key order."""
