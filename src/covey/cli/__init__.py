"""The covey command."""
