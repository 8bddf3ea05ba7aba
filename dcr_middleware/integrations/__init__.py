"""Adapters that let authorization-server libraries use the registered clients."""
