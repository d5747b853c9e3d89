"""The RQ job a timer wakes: :func:`fire_timer` re-reads the timer and hands it to its
policy (:mod:`b24app.timers.registry`), which sends once per timer.

Delivery guarantee — claim, send, mark (every policy keeps it; docs/timers.md):

1. **Re-read** the timer and, in its policy, what the timer is about (the portal, the
   journey, the appointment). Not pending any more, journey handled (replied, confirmed,
   closed, deleted), portal uninstalled or waiting for re-authorisation → the row becomes
   ``skipped`` and nothing is sent.
2. **Claim**: a conditional ``UPDATE … SET claimed_at = now WHERE state = 'pending' AND
   fired_at IS NULL AND (claimed_at IS NULL OR claimed_at < now - STALE_CLAIM)``, committed
   on its own. Of two jobs for the same timer (two workers, an RQ retry, a job re-created by
   reconciliation) exactly one gets the row; the other returns ``busy`` and sends nothing.
   :func:`send_claimed` does steps 2–4 for a policy; an appointment reminder claims with
   :func:`claim_statement` in the transaction of step 1 and records steps 3–4 in one more
   (:mod:`b24app.appointments.remind`).
3. **Send** the REST calls. Each completed step (``notify``, ``task``, ``comment``, ``todo``)
   is written to the row's ``payload["done"]`` at once, so a retry resumes after the last
   step that went through instead of repeating it.
4. **Mark** ``fired`` with ``fired_at`` and ``recipient_user_id``.

Failures: a transient error (rate limit, 5xx, network, expired token) clears the claim and
re-raises, so RQ's ``Retry`` (set at enqueue) runs the job again — a failed send never counts
as sent. After the last retry the failed job expires with its ``failure_ttl`` and
reconciliation schedules the still-pending timer again. A permanent error (access denied,
portal gone, token revoked, lead not found) marks the timer ``skipped`` with the reason:
retrying cannot help. If the worker dies between claim and mark (SIGKILL, OOM, host loss), the
claim goes stale after :data:`STALE_CLAIM`; reconciliation (every minute, :mod:`b24app.timers.reconcile`) enqueues the timer
again and the new job re-claims it.

So sending is exactly once in every case but one: a crash after a REST call succeeded and
before its step was recorded re-sends that one call (at-least-once there). That window is a
few milliseconds; for the notification it is harmless besides, because every notification
carries a ``TAG`` unique to lead + policy + level and Bitrix24 replaces an older notification
with the same TAG instead of showing two.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import or_
from sqlalchemy import update

from b24app import context
from b24app.bitrix.budget import urgent_rest
from b24app.bitrix.errors import AccessDenied
from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import NotFound
from b24app.bitrix.errors import PortalUnavailable
from b24app.context import Services
from b24app.storage.db import rows_affected
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.timers.registry import policy_for

log = logging.getLogger(__name__)

# A claim this old without fired_at is a worker that died mid-send: reconciliation retries it.
# Far above one send's worst case (a few REST calls with the client's own retries).
STALE_CLAIM = dt.timedelta(minutes=5)
# Retrying these cannot help: the timer is marked skipped with the error's name.
PERMANENT_ERRORS = (AccessDenied, AuthRevoked, NotFound, PortalUnavailable)


def fire_timer(timer_id: int) -> str:
    """RQ job: do what timer ``timer_id`` is for; returns ``fired``, ``skipped`` or ``busy``.

    The pending timer is read and handed to its policy in one transaction; what the policy
    sends, it sends after that transaction (see the module docstring for the guarantees).
    """
    services = context.current()
    now = utc_now()
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is None or timer.state != TimerState.PENDING:
            return "skipped"
        prepared = policy_for(timer.policy)(services, session, timer, now)
    return prepared if isinstance(prepared, str) else prepared()


def skip(timer: Timer, reason: str) -> str:
    """Mark a due timer ``skipped`` with ``reason`` (in the caller's transaction)."""
    timer.state = TimerState.SKIPPED
    timer.payload = {**(timer.payload or {}), "skip_reason": reason}
    return "skipped"


def claim_statement(timer_id: int, now: dt.datetime) -> Any:
    """The conditional UPDATE that claims a pending timer (one row affected: ours)."""
    return (
        update(Timer)
        .where(
            Timer.id == timer_id,
            Timer.state == TimerState.PENDING,
            Timer.fired_at.is_(None),
            or_(
                Timer.claimed_at.is_(None),
                Timer.claimed_at < now - STALE_CLAIM,
            ),
        )
        .values(claimed_at=now)
        .execution_options(synchronize_session=False)
    )


def claim(services: Services, timer_id: int, now: dt.datetime) -> bool:
    """Claim a pending timer for sending; False if someone else holds (or held) it."""
    with services.db() as session:
        return bool(rows_affected(session.execute(claim_statement(timer_id, now))))


def _release(services: Services, timer_id: int) -> None:
    with services.db() as session:
        session.execute(
            update(Timer)
            .where(Timer.id == timer_id, Timer.fired_at.is_(None))
            .values(claimed_at=None)
            .execution_options(synchronize_session=False)
        )


def send_claimed(
    services: Services,
    timer_id: int,
    now: dt.datetime,
    payload: dict[str, Any],
    send: Callable[[Steps], int],
) -> str:
    """Claim the timer, ``send(steps)`` (returns the recipient), mark it: ``fired``,
    ``skipped`` (a permanent error) or ``busy`` (someone else holds it); a transient error
    releases the claim and is raised for the job's retry (see the module docstring)."""
    if not claim(services, timer_id, now):
        return "busy"
    steps = Steps(services, timer_id, payload)
    # A due reminder/escalation goes before bulk reads in the portal's bucket (issue 14).
    try:
        with urgent_rest():
            recipient = send(steps)
    except PERMANENT_ERRORS as exc:
        log.warning("timer %s not sent: %s", timer_id, type(exc).__name__)
        _finish(services, timer_id, TimerState.SKIPPED, skip=type(exc).__name__)
        return "skipped"
    except Exception:
        _release(services, timer_id)
        raise
    _finish(services, timer_id, TimerState.FIRED, recipient=recipient)
    return "fired"


class Steps:
    """The REST steps of one send already done, persisted as they complete (resumable)."""

    def __init__(self, services: Services, timer_id: int, payload: dict[str, Any]) -> None:
        self.services = services
        self.timer_id = timer_id
        self.payload = dict(payload)
        self.done: list[str] = list(self.payload.get("done") or [])

    def __contains__(self, step: str) -> bool:
        return step in self.done

    def mark(self, step: str) -> None:
        """Record ``step`` as done (its own transaction: it survives a later failure)."""
        self.done.append(step)
        self.payload["done"] = list(self.done)
        with self.services.db() as session:
            session.execute(
                update(Timer)
                .where(Timer.id == self.timer_id)
                .values(payload=dict(self.payload))
                .execution_options(synchronize_session=False)
            )


def _finish(
    services: Services,
    timer_id: int,
    state: str,
    *,
    recipient: int | None = None,
    skip: str | None = None,
) -> None:
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is None:
            return
        timer.state = state
        if state == TimerState.FIRED:
            timer.fired_at = utc_now()
            timer.recipient_user_id = recipient
        if skip is not None:
            timer.payload = {**(timer.payload or {}), "skip_reason": skip}
