"""Membership: SWIM probes with Lifeguard, gossip, beacons, push-pull, the member table."""
