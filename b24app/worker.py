"""The RQ worker process: services built once, then RQ's own worker with its scheduler.

We use plain RQ rather than Flask-RQ: Flask-RQ 1.0's worker starts a new ``flask`` process for
every job (a fresh interpreter and app import per job, hundreds of milliseconds), which would
eat the SLA timers' lateness budget. Jobs here are plain functions that need no Flask app.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from redis import Redis
from rq import Queue
from rq import SimpleWorker
from rq import Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT
from rq.defaults import DEFAULT_LOGGING_FORMAT
from rq.executions import Execution
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.utils import parse_composite_key
from rq.worker import BaseWorker

from b24app import context
from b24app import logs
from b24app import metrics
from b24app.assistant.understanding import warm_up
from b24app.config import Settings

log = logging.getLogger(__name__)


# The modules that register the timer policies (b24app/timers/registry.py): a timer job can
# run only in a process that imported them, so the worker does before it forks, and the test
# session does in tests/conftest.py.
TIMER_POLICY_MODULES = (
    "b24app.sla.alerts",
    "b24app.appointments.remind",
    "b24app.appointments.reinvite",
    "b24app.appointments.question",
)
# Job modules imported once in the parent: RQ forks a work-horse per job, and a module first
# imported in the child (requests, holidays calendars, SQLAlchemy models…) is imported again for
# every job — measured at ~0.5 s per SLA timer job before this preload.
JOB_MODULES = (
    *TIMER_POLICY_MODULES,
    "b24app.assistant.jobs",
    "b24app.assistant.service",
    "b24app.handlers.jobs",
    "b24app.install.service",
    "b24app.kpi.reports",
    "b24app.leads.backfill",
    "b24app.robots.jobs",
    "b24app.timers.fire",
    "b24app.timers.reconcile",
    "b24app.restlog",
    "b24app.appointments.booking",
    "b24app.appointments.replies",
    "b24app.appointments.routes",
)


def preload_job_modules() -> None:
    """Import every module that holds jobs (and what they import) before forking."""
    import importlib

    for name in JOB_MODULES:
        importlib.import_module(name)
    import holidays

    holidays.country_holidays("RU")  # builds the country's rule tables once


def _dispose_pool_in_child() -> None:
    # A forked work-horse must not reuse the parent's pooled DB or HTTP connections.
    services = context._current
    if services is not None:
        services.after_fork()


# RQ's scheduler moves due jobs onto their queues once a second by default; a timer's
# lateness budget is 2 s at p99, so poll four times as often (one ZRANGEBYSCORE per queue).
SCHEDULER_INTERVAL_S = 0.25


class FastScheduler(RQScheduler):
    """RQ's scheduler polling every :data:`SCHEDULER_INTERVAL_S` (its lock TTLs, computed from
    the integer ``interval``, stay as RQ sets them)."""

    def work(self) -> None:
        self._install_signal_handlers()
        self.register_birth()
        while True:
            if self._stop_requested:
                self.stop()
                break
            if self.should_reacquire_locks:
                self.acquire_locks()
            self.heartbeat()
            self.enqueue_scheduled_jobs()
            time.sleep(SCHEDULER_INTERVAL_S)


class _FastSchedulerMixin:
    """Start RQ's scheduler with :data:`SCHEDULER_INTERVAL_S` instead of its fixed 1 s."""

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        worker: Any = self
        worker.scheduler = FastScheduler(
            worker.queues,
            connection=worker.connection,
            logging_level=logging_level if logging_level is not None else worker.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=worker.serializer,
        )
        worker.scheduler.acquire_locks()
        if worker.scheduler.acquired_locks:
            if burst:
                try:
                    worker.scheduler.register_birth()
                    worker.scheduler.enqueue_scheduled_jobs()
                finally:
                    worker.scheduler.release_locks()
                    worker.scheduler.register_death()
            else:
                worker.scheduler.start()


class _PromptStopMixin:
    """Listen for RQ's commands (stop a job, shut down) with a one-second poll.

    RQ runs its pub/sub thread with ``sleep_time=60`` and, at shutdown, stops it; since
    redis-py 8.2 ``PubSubWorkerThread.stop()`` waits for the thread, which sleeps out its 60 s
    once unsubscribed: every burst drain and every worker shutdown (a deploy) took up to a
    minute. A one-second blocking read costs the worker nothing.
    """

    def subscribe(self) -> None:
        worker: Any = self
        worker.pubsub = worker.connection.pubsub()
        worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
        worker.pubsub_thread = worker.pubsub.run_in_thread(
            sleep_time=1, daemon=True, exception_handler=worker._pubsub_exception_handler
        )


class ForkingAppWorker(_PromptStopMixin, _FastSchedulerMixin, Worker):
    """RQ's forking worker: every job in a fresh work-horse process (isolation)."""


class InProcessAppWorker(_PromptStopMixin, _FastSchedulerMixin, SimpleWorker):
    """Jobs run in the worker process itself: no fork per job (the lowest latency)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def recover_abandoned_jobs(redis: Redis, queues: list[Queue]) -> list[str]:
    """Hand jobs that a crashed worker of THIS host left "started" back to RQ at once.

    RQ 3.0 retries an abandoned job (or fails it when no retries are left) only after its
    heartbeat expired (job monitoring interval + 60 s) and at the next registry maintenance
    (every 10 minutes). A worker restarted after a crash (systemd, a deploy) need not wait:
    an execution whose worker was on this host and whose process is gone is expired now and
    RQ's own ``StartedJobRegistry.cleanup`` retries it (event and timer jobs carry a
    ``Retry``). Workers on other hosts are left to RQ's heartbeat expiry. Returns the ids.
    """
    host = socket.gethostname()
    recovered: list[str] = []
    for queue in queues:
        registry = StartedJobRegistry(queue.name, connection=redis)
        expired: list[str] = []
        for raw in redis.zrange(registry.key, 0, -1):
            entry = raw.decode() if isinstance(raw, bytes) else str(raw)
            job_id, execution_id = parse_composite_key(entry)
            try:
                worker_name = Execution.fetch(execution_id, job_id, redis).worker_name
            except ValueError:  # execution hash gone: only RQ's expiry can judge it
                continue
            info = redis.hmget(
                Worker.redis_worker_namespace_prefix + worker_name, "hostname", "pid", "death"
            )
            hostname, pid, death = (v.decode() if isinstance(v, bytes) else v for v in info)
            dead = death is not None or (
                hostname == host and pid is not None and not _pid_alive(int(pid))
            )
            if hostname is None and death is None:
                # The worker's key expired: RQ's own heartbeat expiry will handle the job.
                continue
            if dead:
                expired.append(entry)
                recovered.append(job_id)
        if expired:
            redis.zadd(registry.key, dict.fromkeys(expired, 0), xx=True)
            registry.cleanup(timestamp=0)
            log.warning("requeued %d job(s) abandoned by a dead worker", len(expired))
    return recovered


def make_worker(
    settings: Settings,
    queues: list[str] | None = None,
    *,
    fork: bool = False,
    name: str | None = None,
) -> BaseWorker:
    """A worker over ``queues`` (default: all, in priority order) with services preloaded."""
    services = context.build_services(settings)
    context.set_current(services)
    logs.configure(settings.log_level)
    os.register_at_fork(after_in_child=_dispose_pool_in_child)
    preload_job_modules()
    warm_up(ner=False)  # the assistant's dictionaries once per process, before any fork
    names = [settings.queue_prefix + q for q in queues] if queues else list(settings.queue_names)
    worker_class = ForkingAppWorker if fork else InProcessAppWorker
    return worker_class(
        [services.queues[n] for n in names],
        connection=services.redis,
        name=name,
        exception_handlers=[metrics.count_failed_job],
    )


def run(
    settings: Settings,
    queues: list[str] | None = None,
    *,
    burst: bool = False,
    fork: bool = False,
    with_scheduler: bool = True,
) -> bool:
    """Work until stopped (or until the queues are empty with ``burst``)."""
    worker = make_worker(settings, queues, fork=fork)
    recover_abandoned_jobs(worker.connection, list(worker.queues))
    log.info("worker %s on %s", worker.name, [q.name for q in worker.queues])
    return worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="WARNING")
