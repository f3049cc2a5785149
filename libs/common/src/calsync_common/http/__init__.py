"""HTTP plumbing shared by the services: problem+json errors, health and metrics routes."""
