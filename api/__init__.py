"""The HTTP API: app factory, routers, schemas, error handlers, auth."""

__version__ = "0.1.0"
SERVICE_NAME = "Futurisys ML Deploy"
