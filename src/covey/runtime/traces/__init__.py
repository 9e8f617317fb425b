"""Trace records (seed 003's MonInfo): the ring buffer and the link to a collector."""
