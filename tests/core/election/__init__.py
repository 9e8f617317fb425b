"""Tests of covey.core.election."""
