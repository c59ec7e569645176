"""Defaults that the settings read without importing the database stack (SQLAlchemy)."""

DEFAULT_DATABASE_URL = "sqlite:///data/traces.db"
"""Where traces (and users, serving state, datasets) live when DATABASE_URL names nothing."""

USERNAME_MIN_CHARS = 3
"""The shortest user name the API accepts."""
USERNAME_MAX_CHARS = 64
"""The longest user name the table stores (and the API accepts)."""
USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]+$"
"""The characters a user name may have: the API's rule, and ADMIN_USERNAME's."""
