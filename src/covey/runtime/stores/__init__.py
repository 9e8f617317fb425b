"""Durable stores: what must survive a restart, one interface per need."""
