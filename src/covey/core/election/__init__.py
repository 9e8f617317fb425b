"""Leader election with terms, quorum, leases and fencing (seed 001)."""
