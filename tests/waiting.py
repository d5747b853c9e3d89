"""Waiting on conditions, never racing the clock.

A deadline here only bounds how long a *failing* test hangs: a passing test returns as soon
as its condition holds, so the deadline is generous (CI runs the suite with ``-n 2`` on two
cores, twice, and a loaded machine can be several times slower than an idle one).
``B24APP_TEST_DEADLINE`` (seconds, default 120) sets it for every wait at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def deadline_seconds(at_least: float = 0.0) -> float:
    """The deadline for one wait: ``B24APP_TEST_DEADLINE`` (default 120 s), or more."""
    return max(float(os.environ.get("B24APP_TEST_DEADLINE") or 120.0), at_least)


def wait_for(
    predicate: Callable[[], bool],
    timeout: float | None = None,
    what: str = "",
    interval: float = 0.1,
) -> None:
    """Poll until ``predicate()``; ``AssertionError`` after the deadline.

    ``timeout`` is a floor: the deadline is never shorter than ``deadline_seconds()``.
    """
    limit = deadline_seconds(timeout or 0.0)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if predicate():
        return
    raise AssertionError(f"not reached in {limit:.0f} s: {what or 'condition'}")
