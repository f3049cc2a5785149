"""calsync_availability."""
