"""calsync connector: OAuth with MSAL, token custody, connections and calendar settings."""
