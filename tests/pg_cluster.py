"""A throwaway PostgreSQL cluster of the test's own, for fault injection (restart, freeze).

``initdb`` in a temporary folder, ``pg_ctl start`` on a free loopback port with its socket in
that folder: never the machine's shared server. As root (initdb refuses to run as root) the
binaries run as the ``postgres`` OS user, through ``runuser``, and the folder is theirs.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.live_server import free_port

_PG_USER = "postgres"


class ClusterUnavailable(Exception):
    """No PostgreSQL binaries here, or no way to run them: the caller skips."""


def find_bin_dir() -> Path:
    """The newest installed PostgreSQL's ``bin`` that has initdb, pg_ctl and postgres."""
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda path: _major(path.parent.name),
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise ClusterUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin"
        " or on PATH"
    )


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


def _run_as() -> list[str]:
    """The prefix that runs a PostgreSQL binary as a user it accepts."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ClusterUnavailable("running as root and runuser is missing: initdb refuses root")
    try:
        import pwd

        pwd.getpwnam(_PG_USER)
    except KeyError as error:
        raise ClusterUnavailable(
            f"running as root and there is no '{_PG_USER}' OS user to run initdb as"
        ) from error
    return [runuser, "-u", _PG_USER, "--"]


@dataclass
class PgCluster:
    bin_dir: Path
    base: Path
    port: int
    prefix: list[str]

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_PG_USER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def pg_ctl(self, *args: str, timeout: float = 60) -> str:
        """``pg_ctl -D <data> -w <args>``, its output; raises with it and the server log."""
        command = [*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", *args]
        # Its output to a file, not a pipe: a server it starts inherits the descriptors, and
        # reading a pipe to its end would wait for that server to exit.
        with tempfile.TemporaryFile() as output:
            completed = subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
            output.seek(0)
            said = output.read().decode(errors="replace")
        if completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {completed.returncode}:\n{said}"
                f"\n--- server log ---\n{self.log()[-4000:]}"
            )
        return said

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=on"
            " -c max_connections=200"
        )
        self.pg_ctl("-o", options, "-l", str(self.log_path), "-t", "60", "start")

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: sessions ended; ``immediate``: no checkpoint) and start again."""
        # -l again: restart keeps the server's options, not where its log goes.
        self.pg_ctl("-m", mode, "-l", str(self.log_path), "-t", "60", "restart")

    def stop(self, mode: str = "immediate") -> None:
        self.pg_ctl("-m", mode, "-t", "30", "stop", timeout=40)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url(database), connect_timeout=10) as connection:
            return list(connection.execute(sql, params).fetchall())

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        pid = int(first)
        return pid if Path(f"/proc/{pid}").exists() else None

    def processes(self) -> list[int]:
        """The postmaster and every process below it (backends, checkpointer, walwriter...)."""
        root = self.postmaster_pid()
        if root is None:
            return []
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue  # exited meanwhile
            # The command name is in parentheses and may hold spaces: ppid follows the last ')'.
            ppid = int(text.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def signal_all(self, signum: int) -> list[int]:
        pids = self.processes()
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids

    @contextmanager
    def frozen(self) -> Iterator[list[int]]:
        """Every process of the cluster stopped (SIGSTOP) inside the block; SIGCONT after."""
        try:
            # The postmaster first, so that it forks no new child while the others stop;
            # then the tree again, for a child forked in between.
            stopped = self.signal_all(signal.SIGSTOP)
            stopped = sorted(set(stopped) | set(self.signal_all(signal.SIGSTOP)))
            yield stopped
        finally:
            self.signal_all(signal.SIGCONT)


@contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """A started cluster of the test's own (trust auth, user ``postgres``); removed after.

    Raises ``ClusterUnavailable`` when it cannot be made here (the caller skips).
    """
    bin_dir = find_bin_dir()
    prefix = _run_as()
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="pg-faults-"))
    cluster = PgCluster(bin_dir, base, free_port(), prefix)
    try:
        if prefix:
            shutil.chown(base, _PG_USER, _PG_USER)
        initdb = [
            *prefix,
            str(bin_dir / "initdb"),
            "-D",
            str(cluster.data),
            "-U",
            _PG_USER,
            "--auth=trust",
            "--no-sync",
        ]
        completed = subprocess.run(initdb, capture_output=True, text=True, timeout=120)
        if completed.returncode != 0:
            raise ClusterUnavailable(
                f"initdb failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}"
            )
        cluster.start()
        yield cluster
    finally:
        _tear_down(cluster)
        shutil.rmtree(base, ignore_errors=True)


def _tear_down(cluster: PgCluster) -> None:
    """Stop the cluster whatever state a test left it in (frozen included)."""
    cluster.signal_all(signal.SIGCONT)
    if cluster.postmaster_pid() is None:
        return
    with suppress(Exception):
        cluster.stop("immediate")
    deadline = time.monotonic() + 10
    while cluster.processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in cluster.processes():  # pg_ctl could not stop it: it must not outlive the test
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
