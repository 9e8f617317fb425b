"""Shared state (seed 000): facts, versions, cluster-wide actions and settings."""
