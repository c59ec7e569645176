"""A database already at head is told so without Alembic; any other goes through Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from db.migrate import alembic_config, is_at_head, script_head, upgrade_to_head
from tests.helpers import run_python

_PROGRAM = """
import json, sys
from db.migrate import upgrade_to_head
upgrade_to_head(sys.argv[1])
print(json.dumps({"alembic": "alembic" in sys.modules}))
"""


def test_the_scripts_head_is_alembics() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script_head() == scripts.get_current_head()


def test_a_database_at_head_is_checked_without_alembic(database_url: str) -> None:
    upgrade_to_head(database_url)
    assert is_at_head(database_url)
    assert run_python(_PROGRAM, database_url) == {"alembic": False}


def test_a_new_or_an_older_database_is_migrated_by_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    assert not is_at_head(url)
    assert run_python(_PROGRAM, url) == {"alembic": True}
    assert is_at_head(url)
    command.downgrade(alembic_config(url), "-1")
    assert not is_at_head(url)
    upgrade_to_head(url)
    assert is_at_head(url)
