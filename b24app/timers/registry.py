"""The timer policies, by name: what a due timer of each policy does.

A policy is a function ``prepare(services, session, timer, now)`` called by
:func:`b24app.timers.fire.fire_timer` inside the transaction that read the pending ``timer``.
It answers an outcome (``"skipped"``, ``"busy"``) when there is nothing to send, or a
function without arguments that sends and answers ``"fired"`` / ``"skipped"`` (it runs after
that transaction has committed, so a claim made in it is visible before any REST call).

Policies register when their module is imported. Every process that runs timer jobs imports
those modules first: the worker before it forks (``TIMER_POLICY_MODULES`` in
b24app/worker.py), the test session in tests/conftest.py. A timer whose policy nobody
registered, with no catch-all either, fails the job with :class:`UnknownPolicy`; the row stays
pending for reconciliation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.orm import Session

from b24app.context import Services
from b24app.storage.models import Timer

Send = Callable[[], str]
Prepare = Callable[[Services, Session, Timer, dt.datetime], "str | Send"]

_BY_NAME: dict[str, Prepare] = {}
_OTHERS: list[Prepare] = []


class UnknownPolicy(LookupError):
    """No module registered the timer's policy (its module was not imported)."""


def register(prepare: Prepare, *names: str, others: bool = False) -> Prepare:
    """Register ``prepare`` for the policy ``names``; with ``others`` also for every name no
    module claims (the SLA ladders a robot starts under a name of its own). Idempotent."""
    for name in names:
        _BY_NAME[name] = prepare
    if others:
        _OTHERS[:] = [prepare]
    return prepare


def policy_for(name: str) -> Prepare:
    """The registered policy of ``name``; :class:`UnknownPolicy` when there is none."""
    found = _BY_NAME.get(name) or (_OTHERS[0] if _OTHERS else None)
    if found is None:
        raise UnknownPolicy(f"no timer policy registered for {name!r}")
    return found


def registered() -> set[str]:
    """The policy names registered by name (the catch-all for other names aside)."""
    return set(_BY_NAME)
