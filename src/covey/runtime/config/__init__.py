"""Agent configuration: the validated record and the sources it is merged from."""
