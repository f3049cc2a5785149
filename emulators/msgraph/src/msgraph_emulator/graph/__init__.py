"""Microsoft Graph v1.0 (calendar subset)."""
