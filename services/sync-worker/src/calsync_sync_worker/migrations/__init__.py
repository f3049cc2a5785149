"""Alembic revisions of the sync-worker database (applied at start and by ``make migrate``)."""
