"""Tests of covey.core.state."""
