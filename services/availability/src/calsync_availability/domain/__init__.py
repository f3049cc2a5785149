"""Pure domain model: no aiohttp, aiokafka or asyncpg here."""
