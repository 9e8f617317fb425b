"""The agent's HTTP API: routes described once (routes.py), checked and served (app.py),
documented as OpenAPI 3.1 (openapi.py), with blocking queries and an event stream."""
