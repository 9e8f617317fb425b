"""Tests of covey.core.wire: frames, fields and the message codec."""
