"""calsync_connector."""
