"""Logging set-up, done once per process."""

import logging

_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def configure_logging(level: str) -> None:
    """Send records to stderr at ``level``; idempotent, and leaves existing handlers alone."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level.upper(), format=_FORMAT)
    root.setLevel(level.upper())
    # Alembic lists each of its own plugins at INFO on every start: ten lines that say nothing.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
