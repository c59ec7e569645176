"""Migrations survive a crash at any point, and several hosts starting at once.

A process killed (SIGKILL) in the middle of a migration must leave a database that the next
start migrates to exactly the schema of a fresh one; processes that migrate one database at
the same time, each with its own lock files (as on separate hosts), must all succeed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect

from db.engine import make_engine
from db.migrate import upgrade_to_head
from tests.helpers import ROOT

# One fresh interpreter forks a child per crash point: each child migrates its own SQLite
# file and SIGKILLs itself before (or after) the Nth SQL statement of the migration chain.
_CRASHER = r"""
import json, os, signal, sys
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import Engine
from db.migrate import upgrade_to_head

workdir = Path(sys.argv[1])


def migrate(url, when=None, kill_at=0):
    statements = 0

    def before(*_args):
        nonlocal statements
        statements += 1
        if when == "before" and statements == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def after(*_args):
        if when == "after" and statements == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    upgrade_to_head(url)
    return statements


def in_child(function, *args):
    pid = os.fork()
    if pid == 0:
        try:
            function(*args)
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


def count_statements():
    (workdir / "count").write_text(str(migrate(f"sqlite:///{workdir / 'fresh.db'}")))


in_child(count_statements)
count = int((workdir / "count").read_text())
crashes = []
for when in ("before", "after"):
    for kill_at in range(1, count + 1):
        name = f"{when}-{kill_at}.db"
        status = in_child(migrate, f"sqlite:///{workdir / name}", when, kill_at)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        crashes.append({"file": name, "killed": killed})
print(json.dumps({"statements": count, "crashes": crashes}))
"""

# Waits until the same moment as its siblings, then migrates.
_MIGRATOR = r"""
import sys, time
from db.migrate import upgrade_to_head

time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
upgrade_to_head(sys.argv[1])
"""


def sqlite_schema(path: Path) -> list[tuple[str, ...]]:
    """Every table's and index's DDL, and the recorded revision."""
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).all()
        version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    engine.dispose()
    return [tuple(str(value) for value in row) for row in [*rows, *version]]


def schema_of(database_url: str) -> dict[str, object]:
    """Tables with their columns, indexes, unique constraints and primary keys; the recorded
    revision.

    Names only: the same migrations make dialect-specific types (JSONB on PostgreSQL).
    """
    engine = make_engine(database_url)
    with engine.connect() as connection:
        inspector = inspect(connection)
        schema: dict[str, object] = {
            table: (
                sorted(column["name"] for column in inspector.get_columns(table)),
                # PostgreSQL lists a unique constraint's index as an index too; SQLite does not.
                sorted(
                    index["name"] or ""
                    for index in inspector.get_indexes(table)
                    if not index.get("duplicates_constraint")
                ),
                sorted(c["name"] or "" for c in inspector.get_unique_constraints(table)),
                inspector.get_pk_constraint(table)["constrained_columns"],
            )
            for table in sorted(inspector.get_table_names())
        }
        schema["revision"] = connection.exec_driver_sql(
            "SELECT version_num FROM alembic_version"
        ).all()
    engine.dispose()
    return schema


@pytest.mark.slow
def test_a_migration_killed_at_any_statement_leaves_a_database_that_migrates(
    tmp_path: Path,
) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["statements"] > 20  # the whole chain ran, so every step had a crash point
    fresh = sqlite_schema(tmp_path / "fresh.db")
    failures = {}
    for crash in report["crashes"]:
        assert crash["killed"], crash  # the crash point was reached
        try:
            upgrade_to_head(f"sqlite:///{tmp_path / crash['file']}")
            schema = sqlite_schema(tmp_path / crash["file"])
        except Exception as error:  # noqa: BLE001 - every crash point is reported, not the first
            failures[crash["file"]] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            continue
        if schema != fresh:
            failures[crash["file"]] = f"schema differs: {sorted(set(schema) ^ set(fresh))}"
    assert failures == {}


def test_processes_that_migrate_one_empty_database_at_once_all_succeed(
    database_url: str, tmp_path: Path
) -> None:
    # Each process has its own TMPDIR, hence its own lock file: as on separate hosts, only
    # the database can make them take turns.
    start_at = str(time.time() + 3.0)
    processes = []
    for index in range(3):
        tmpdir = tmp_path / f"host-{index}"
        tmpdir.mkdir()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", _MIGRATOR, database_url, start_at],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outcomes = [(process.wait(timeout=120), process.communicate()[1]) for process in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    upgrade_to_head(reference)
    assert schema_of(database_url) == schema_of(reference)
