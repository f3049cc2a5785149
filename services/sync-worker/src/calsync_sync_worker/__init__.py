"""calsync_sync_worker."""
