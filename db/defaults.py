"""Defaults that the settings read without importing the database stack (SQLAlchemy)."""

DEFAULT_DATABASE_URL = "sqlite:///data/traces.db"
"""Where traces (and users, serving state, datasets) live when DATABASE_URL names nothing."""
