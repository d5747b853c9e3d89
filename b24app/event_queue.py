"""How event jobs run: their queue, their retries, how long a failed one is kept, and how a job
is queued once (:func:`enqueue_once`, RQ's ``unique``: a second delivery of the same work is no job).

Shared by the event jobs (:mod:`b24app.handlers.jobs`) and the coalesced intake's drainer
continuations (:mod:`b24app.leads.coalesce`), which are event work too: the domain module
enqueues its continuation without importing the jobs module above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from rq import Queue
from rq import Retry
from rq.exceptions import DuplicateJobError

QUEUE = "events"
RETRY_INTERVALS = (5, 30, 120)  # seconds before each try after the first
FAILURE_TTL = 7 * 86400


def retry(intervals: Sequence[int] = RETRY_INTERVALS) -> Retry:
    """RQ's retries of a job, one after each of ``intervals`` seconds. Test hook: the
    environment variable ``B24APP_RETRY_SECONDS_SCALE`` (default 1), read when the job is
    queued, scales them (never below a second: a retry stays scheduled, not immediate)."""
    scale = float(os.environ.get("B24APP_RETRY_SECONDS_SCALE") or 1)
    return Retry(max=len(intervals), interval=[max(1, round(s * scale)) for s in intervals])


def enqueue_once(queue: Queue, func: Callable[..., Any], *args: Any, **options: Any) -> bool:
    """Queue ``func(*args)`` under ``options["job_id"]`` unless that job is already queued
    (RQ's ``unique``); False for a second delivery of the same work. ``options`` are RQ's
    (and the job's keyword arguments, as ``Queue.enqueue`` takes them)."""
    try:
        queue.enqueue(func, *args, unique=True, **options)
    except DuplicateJobError:
        return False
    return True
