"""How the outside reaches the service: HTTP app, consumers."""
