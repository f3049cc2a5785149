"""Event contracts: every message on Kafka is a CloudEvents 1.0 event whose data is one of these."""
