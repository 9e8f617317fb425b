"""Runtime features: a core capability with its control operations, routes and background work."""
