"""I/O: SQL, Kafka, HTTP clients."""
