"""HTTP status API of the covey agent."""
