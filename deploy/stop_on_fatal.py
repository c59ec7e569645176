"""supervisord event listener: stop supervisord when a program cannot be started at all.

A program that keeps dying at start (no SECRET_KEY with ENV=prod, a broken model store...)
ends FATAL, and supervisord would idle on with that part of the app dead. Stopping it ends
the container, so the Space reports the failure with its logs instead of serving half an app.
Crashes after a good start are not FATAL: supervisord restarts those.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    while True:
        # The event listener protocol: READY, read one header line and its payload, answer OK.
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        header = dict(token.split(":", 1) for token in sys.stdin.readline().split())
        payload = sys.stdin.read(int(header["len"]))
        sys.stdout.write("RESULT 2\nOK")
        sys.stdout.flush()
        if header["eventname"] == "PROCESS_STATE_FATAL":
            sys.stderr.write(f"stop_on_fatal: {payload}; stopping supervisord\n")
            sys.stderr.flush()
            os.kill(os.getppid(), signal.SIGTERM)


if __name__ == "__main__":
    main()
