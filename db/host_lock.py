"""A lock between the processes of one host (workers starting together), by a lock file."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def host_lock(purpose: str, key: str) -> Iterator[None]:
    """Hold the lock named by ``purpose`` and ``key`` (e.g. a database URL) until the end."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"futurisys-{purpose}-{digest}.lock"
    with lock_path.open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
