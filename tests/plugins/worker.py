"""Real RQ worker fixtures: ``rq_worker`` is a ``b24app worker`` subprocess (with RQ's
scheduler) on the test session's database and private Redis.

Handle: ``.start()``, ``.stop()`` (SIGTERM, graceful), ``.kill()`` (SIGKILL, a crash) and
``.running``. Extra environment (``B24APP_SLA_SECONDS_PER_MINUTE=1`` for timer tests) goes in
``rq_worker.env`` before ``start()``, or through :func:`start_workers`. A killed worker
leaves RQ's scheduler lock for ~61 s; ``kill()`` removes it as its expiry would, so the next
worker's scheduler starts at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from rq.scheduler import RQScheduler

from b24app.config import Settings


def worker_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker process on ``settings``' database and Redis."""
    env = dict(os.environ)
    env.update(
        {
            "B24APP_DATABASE_URL": settings.database_url,
            "B24APP_REDIS_URL": settings.redis_url,
            "B24APP_CLIENT_ID": settings.client_id,
            "B24APP_CLIENT_SECRET": settings.client_secret,
            "B24APP_SECRET_KEY": settings.secret_key,
            "B24APP_PUBLIC_URL": settings.public_url,
            "B24APP_ALLOW_INSECURE_ENDPOINTS": "1",
            "B24APP_QUEUE_PREFIX": settings.queue_prefix,
        }
    )
    env.update(extra or {})
    return env


class WorkerProcess:
    """One ``b24app worker`` subprocess."""

    def __init__(self, settings: Settings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.env: dict[str, str] = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> WorkerProcess:
        if self.running:
            return self
        exe = shutil.which("b24app") or os.path.join(os.path.dirname(sys.executable), "b24app")
        self.proc = subprocess.Popen(
            [exe, "worker"],
            env=worker_env(self.settings, self.env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_registered()
        return self

    def _wait_registered(self, timeout: float = 20.0) -> None:
        # Ready when RQ has registered a worker and the scheduler holds its locks.
        redis = Redis.from_url(self.settings.redis_url)
        key = RQScheduler.get_locking_key(self.settings.queue_prefix + "timers")
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}")
                if redis.exists(key):
                    return
                time.sleep(0.1)
        finally:
            redis.close()
        raise RuntimeError("worker did not start its scheduler")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: RQ's warm shutdown (finish the current job, release the locks)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL (a crash); the dead scheduler's locks are removed as their expiry would."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        try:
            redis = Redis.from_url(self.settings.redis_url)
            for name in self.settings.queue_names:
                redis.delete(RQScheduler.get_locking_key(name))
            redis.close()
        except Exception:  # Redis itself may be down in a crash test
            pass


@pytest.fixture
def rq_worker(settings: Settings, services: object) -> Iterator[WorkerProcess]:
    """A ``b24app worker`` subprocess (not started: call ``.start()`` after setting ``env``)."""
    worker = WorkerProcess(settings)
    yield worker
    worker.kill()
