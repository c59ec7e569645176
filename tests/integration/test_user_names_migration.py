"""Migration da85ee6ef2fd: lowercase names (case twins kept and logged), token versions."""

from __future__ import annotations

import logging

import pytest
from alembic import command
from sqlalchemy import text

from db.engine import make_engine
from db.migrate import alembic_config, upgrade_to_head

BEFORE = "b5e0c9a1d2f3"
LEGACY_NAMES = ("Bob", "carol", "Admin", "admin", "DAVE")


def test_names_are_lowercased_unless_two_differ_only_by_case(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    command.upgrade(alembic_config(database_url), BEFORE)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        for name in LEGACY_NAMES:
            connection.execute(
                text(
                    "INSERT INTO app_user (username, hashed_password, role, is_active, created_at)"
                    " VALUES (:name, 'x', 'viewer', true, CURRENT_TIMESTAMP)"
                ),
                {"name": name},
            )
    with caplog.at_level(logging.WARNING, logger="db.migrations"):
        upgrade_to_head(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT username, token_version FROM app_user")).all()
    engine.dispose()
    assert sorted(name for name, _ in rows) == ["Admin", "admin", "bob", "carol", "dave"]
    assert {version for _, version in rows} == {0}
    assert any("Admin, admin" in record.getMessage() for record in caplog.records)
