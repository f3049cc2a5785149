"""Change-notification domain: subscriptions, delivery log, faults and throttling state.

Pure data and rules (no aiohttp); the Graph routes and the delivery engine live in ``graph/``.
"""
