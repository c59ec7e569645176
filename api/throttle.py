"""Failed-login throttle: sliding windows in memory, per username and per client address.

The counts live in this worker process: with WORKERS=n, a client gets up to n times the
limits (each worker counts what it saw). Memory is bounded: beyond ``max_keys`` names or
addresses, the least recently seen is forgotten.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from api.errors import TooManyRequestsError
from db.defaults import USERNAME_MAX_CHARS

Clock = Callable[[], float]

DEFAULT_MAX_KEYS = 10_000
"""Names (or addresses) remembered; 10,000 windows of 20 floats is a few MB at most."""
_MAX_USERNAME_KEY_CHARS = USERNAME_MAX_CHARS + 1
# A stored name has USERNAME_MAX_CHARS at most: anything longer is unknown, however it goes on.


class SlidingWindow:
    """At most ``limit`` events per key in any ``window`` seconds."""

    def __init__(self, limit: int, window: float, clock: Clock, max_keys: int) -> None:
        self.limit, self.window, self._clock, self._max_keys = limit, window, clock, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may have another event (0: now)."""
        events = self._recent(key)
        if len(events) < self.limit:
            return 0.0
        return events[0] + self.window - self._clock()

    def add(self, key: str) -> float:
        """Count an event of ``key`` now; the time it was counted at."""
        now = self._clock()
        self._recent(key).append(now)
        self._events.move_to_end(key)
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)
        return now

    def discard(self, key: str, at: float) -> None:
        """Uncount the event counted at ``at`` (gone already when the key was forgotten)."""
        events = self._events.get(key)
        if events is not None and at in events:
            events.remove(at)

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def __len__(self) -> int:
        return len(self._events)

    def _recent(self, key: str) -> deque[float]:
        events = self._events.setdefault(key, deque())
        horizon = self._clock() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        return events


@dataclass
class LoginAttempt:
    """A login being checked; counted as a failure unless it succeeds or is cancelled."""

    throttle: LoginThrottle
    username: str
    client: str
    at_user: float
    at_client: float

    def succeeded(self) -> None:
        """The right password: this name starts afresh; this one attempt is uncounted."""
        with self.throttle.lock:
            self.throttle.per_user.clear(self.username)
            self.throttle.per_client.discard(self.client, self.at_client)

    def cancel(self) -> None:
        """Neither right nor wrong (the database or the hasher failed): uncount it."""
        with self.throttle.lock:
            self.throttle.per_user.discard(self.username, self.at_user)
            self.throttle.per_client.discard(self.client, self.at_client)


class LoginThrottle:
    """Failed logins per username and per client address; beyond either limit, 429.

    An attempt is counted when it starts, so that concurrent guesses cannot all get past the
    check before the first of them fails; a success or a cancellation uncounts it.
    """

    def __init__(
        self,
        *,
        per_user: int,
        per_client: int,
        window: float,
        clock: Clock,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.per_user = SlidingWindow(per_user, window, clock, max_keys)
        self.per_client = SlidingWindow(per_client, window, clock, max_keys)
        # Routes may call from several threads (a sync route, another test client).
        self.lock = threading.Lock()

    def start(self, username: str, client: str) -> LoginAttempt:
        """Count an attempt; ``TooManyRequestsError`` when the name or the address is over."""
        key = username[:_MAX_USERNAME_KEY_CHARS]
        with self.lock:
            self._refuse_when_over(self.per_user.wait(key), "for this username")
            self._refuse_when_over(self.per_client.wait(client), "from this address")
            return LoginAttempt(
                self, key, client, self.per_user.add(key), self.per_client.add(client)
            )

    @staticmethod
    def _refuse_when_over(wait: float, whose: str) -> None:
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise TooManyRequestsError(
                f"too many failed logins {whose}: retry in {seconds} s", retry_after=seconds
            )
