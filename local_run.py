"""``make run``: honcho over the Procfile, stopped by a closed terminal as by Ctrl-C.

honcho starts each process in a session of its own and stops them on SIGINT and SIGTERM only.
Closing a terminal sends SIGHUP, whose default action ended honcho at once and left the API
and the dashboard running, holding their ports. Here SIGHUP becomes a SIGTERM to honcho, which
stops both; the terminal is gone, so its output goes to /dev/null from then on (a write to a
hung-up terminal fails, and would end honcho before it stopped them).
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from honcho.command import main


def _hang_up(signum: int, frame: FrameType | None) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        os.dup2(devnull, stream.fileno())
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    signal.signal(signal.SIGHUP, _hang_up)
    main(["start", *sys.argv[1:]])
