"""Alembic revisions of the availability database (applied at start and by ``make migrate``)."""
