"""Acknowledged deliveries in the agent: stores, handler, notifications, operations."""
