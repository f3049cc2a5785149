"""Handlers of commands and events; units of work."""
