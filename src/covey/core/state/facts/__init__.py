"""Facts: the per-node key/value state every node publishes and every node stores."""
