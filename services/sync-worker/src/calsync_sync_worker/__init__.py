"""calsync sync-worker: Graph webhooks, subscriptions, delta sync and write-back of bookings."""
