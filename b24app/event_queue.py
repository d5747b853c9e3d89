"""How event jobs run: their queue, their retries, how long a failed one is kept, and how a job
is queued once (:func:`enqueue_once`, RQ's ``unique``: a second delivery of the same work is no job).

Shared by the event jobs (:mod:`b24app.handlers.jobs`) and the coalesced intake's drainer
continuations (:mod:`b24app.leads.coalesce`), which are event work too: the domain module
enqueues its continuation without importing the jobs module above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq import Queue
from rq import Retry
from rq.exceptions import DuplicateJobError

QUEUE = "events"
RETRY = Retry(max=3, interval=[5, 30, 120])
FAILURE_TTL = 7 * 86400


def enqueue_once(queue: Queue, func: Callable[..., Any], *args: Any, **options: Any) -> bool:
    """Queue ``func(*args)`` under ``options["job_id"]`` unless that job is already queued
    (RQ's ``unique``); False for a second delivery of the same work. ``options`` are RQ's
    (and the job's keyword arguments, as ``Queue.enqueue`` takes them)."""
    try:
        queue.enqueue(func, *args, unique=True, **options)
    except DuplicateJobError:
        return False
    return True
