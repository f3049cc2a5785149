"""Microsoft identity platform (OAuth 2.0 / OpenID Connect v2.0 endpoints)."""
