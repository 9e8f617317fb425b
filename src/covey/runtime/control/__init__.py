"""The control channel: JSON lines over a unix socket or a sealed TCP endpoint."""
