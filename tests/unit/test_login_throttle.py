"""The login throttle's sliding windows and the rate-limited outage log, on a fake clock."""

from __future__ import annotations

import logging

import pytest

from api.errors import RateLimitedLog, TooManyRequestsError
from api.throttle import LoginThrottle, SlidingWindow
from tests.helpers import FakeClock


def test_a_window_lets_events_go_as_they_age() -> None:
    clock = FakeClock()
    window = SlidingWindow(limit=2, window=60, clock=clock, max_keys=10)
    window.add("k")
    clock.now += 30
    window.add("k")
    assert window.wait("k") == pytest.approx(30)
    clock.now += 30
    assert window.wait("k") == 0  # the first event has just aged out
    assert window.wait("other") == 0


def test_a_window_forgets_the_least_recent_keys_beyond_its_size() -> None:
    window = SlidingWindow(limit=1, window=60, clock=FakeClock(), max_keys=3)
    for key in ("a", "b", "c", "d"):
        window.add(key)
    assert len(window) == 3
    assert window.wait("a") == 0 and window.wait("d") > 0


def test_an_attempt_counts_until_it_succeeds_or_is_cancelled() -> None:
    throttle = LoginThrottle(per_user=2, per_client=3, window=60, clock=FakeClock())
    throttle.start("ann", "1.2.3.4")
    throttle.start("ann", "1.2.3.4").cancel()
    throttle.start("ann", "1.2.3.4")
    with pytest.raises(TooManyRequestsError) as refused:
        throttle.start("ann", "5.6.7.8")
    assert refused.value.headers == {"Retry-After": "60"}
    assert "for this username" in refused.value.message
    throttle.start("bob", "1.2.3.4").succeeded()  # a success is not a failure of the address
    throttle.start("bob", "1.2.3.4")
    with pytest.raises(TooManyRequestsError, match="from this address"):
        throttle.start("carl", "1.2.3.4")


def test_a_success_clears_the_names_failures() -> None:
    throttle = LoginThrottle(per_user=2, per_client=100, window=60, clock=FakeClock())
    throttle.start("ann", "a")
    throttle.start("ann", "a").succeeded()
    throttle.start("ann", "a")
    throttle.start("ann", "a")  # two failures since the success: still allowed


def test_the_outage_log_writes_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    log = RateLimitedLog(logging.getLogger("test.outage"), interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for _ in range(5):
            log.warning("down: %s", "refused")
        clock.now += 10
        log.warning("down: %s", "refused")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["down: refused (0 like it left out)", "down: refused (4 like it left out)"]
