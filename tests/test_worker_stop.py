"""An RQ worker of the app stops promptly: a burst drain or a shutdown is not held by the
pub/sub thread's poll (redis-py 8.2 joins that thread at stop; RQ's own poll is 60 s)."""

from __future__ import annotations

from b24app.context import Services
from b24app.worker import ForkingAppWorker
from b24app.worker import InProcessAppWorker


def test_the_workers_poll_for_commands_every_second(services: Services) -> None:
    for worker_class in (InProcessAppWorker, ForkingAppWorker):
        worker = worker_class([services.queue("default")], connection=services.redis)
        worker.work(burst=True, logging_level="WARNING")
        thread = worker.pubsub_thread
        assert thread is not None and thread.sleep_time <= 1  # RQ's own: 60
        assert not thread.is_alive()
