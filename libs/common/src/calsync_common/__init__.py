"""calsync_common."""
