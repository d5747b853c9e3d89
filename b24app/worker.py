"""The RQ worker process: services built once, then RQ's own worker with its scheduler.

We use plain RQ rather than Flask-RQ: Flask-RQ 1.0's worker starts a new ``flask`` process for
every job (a fresh interpreter and app import per job, hundreds of milliseconds), which would
eat the SLA timers' lateness budget. Jobs here are plain functions that need no Flask app.
"""

from __future__ import annotations

import logging
import os

from rq import SimpleWorker
from rq import Worker

from b24app import context
from b24app import logs
from b24app.config import Settings

log = logging.getLogger(__name__)


def _dispose_pool_in_child() -> None:
    # A forked work-horse must not reuse the parent's pooled DB connections.
    services = context._current
    if services is not None:
        services.engine.dispose(close=False)


def make_worker(
    settings: Settings,
    queues: list[str] | None = None,
    *,
    simple: bool = False,
    name: str | None = None,
) -> Worker:
    """A worker over ``queues`` (default: all, in priority order) with services preloaded."""
    services = context.build_services(settings)
    context.set_current(services)
    logs.configure(settings.log_level)
    os.register_at_fork(after_in_child=_dispose_pool_in_child)
    names = [settings.queue_prefix + q for q in queues] if queues else list(settings.queue_names)
    worker_class = SimpleWorker if simple else Worker
    return worker_class([services.queues[n] for n in names], connection=services.redis, name=name)


def run(
    settings: Settings,
    queues: list[str] | None = None,
    *,
    burst: bool = False,
    simple: bool = False,
    with_scheduler: bool = True,
) -> bool:
    """Work until stopped (or until the queues are empty with ``burst``)."""
    worker = make_worker(settings, queues, simple=simple)
    log.info("worker %s on %s", worker.name, [q.name for q in worker.queues])
    return worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="WARNING")
