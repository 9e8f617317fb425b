"""Files shipped for installing covey as a service: the systemd unit and an example
configuration (``covey unit``, ``covey example-config`` print them; ``covey man`` prints
the man page made from the CLI)."""
