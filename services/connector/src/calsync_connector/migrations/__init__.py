"""Alembic revisions of the connector database (applied at start and by ``make migrate``)."""
