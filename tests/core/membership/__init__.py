"""Tests of covey.core.membership: the SWIM node and its parts."""
