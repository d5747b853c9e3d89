"""Real RQ worker fixtures: ``b24app worker`` subprocesses (RQ's forking worker with its
scheduler) on the test's database and private Redis.

* ``rq_worker`` — one worker on every queue, started by the test (``.start()``) when its
  setup is done, so a test decides what the worker sees first; killed after the test.
* ``rq_worker_factory(*args, env=None, start=True)`` — more workers (e.g. ``"--queue",
  "timers"``), started at once by default, all stopped after the test.

Each worker's output (its log and RQ's) goes to a file under the test's ``tmp_path``; when the
test fails, the last lines of every worker's log are added to its report.

Handle: ``.start()``, ``.stop()`` (SIGTERM: RQ's warm shutdown), ``.kill()`` (SIGKILL: a
crash), ``.restart()`` and ``.running``. ``start()`` returns once the scheduler holds its lock,
so a job scheduled after it is picked up. A killed worker leaves RQ's scheduler lock for ~61 s;
``kill()`` deletes it as its expiry would, so the next worker's scheduler starts at once.

RQ 3.0's scheduler polls its registry every second (``Worker.start_scheduler`` builds
``RQScheduler(interval=1)``; there is no option): a timer fires 0–1 s after its due time. The
tests wait with deadlines, never on timings.

Order fixtures so ``installed_portal`` comes before ``rq_worker``: the install drains its
jobs in-process and a running worker would race it for them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Worker
from rq.scheduler import RQScheduler

from b24app.config import Settings
from tests.waiting import deadline_seconds


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    def __init__(
        self,
        settings: Settings,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        log_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.env: dict[str, str] = dict(env or {})
        self.args = tuple(args)
        self.proc: subprocess.Popen[bytes] | None = None
        # Every start appends to the same file, so a restarted worker's history is kept.
        self.log_path = log_path

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> WorkerProcess:
        if self.running:
            return self
        exe = shutil.which("b24app") or os.path.join(os.path.dirname(sys.executable), "b24app")
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [exe, "worker", *self.args],
                env=worker_env(self.settings, self.env),
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own process group: the scheduler and work-horse children are forks of
                # it, and a SIGKILL of the worker alone would leave them running as orphans.
                start_new_session=True,
            )
        finally:
            if not isinstance(output, int):
                output.close()  # the child holds its own descriptor
        self._wait_registered()
        return self

    def log_tail(self, lines: int = 200) -> str:
        """The last ``lines`` lines the worker wrote ("" when it writes to no file)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _wait_registered(self, timeout: float | None = None) -> None:
        # Ready when RQ has registered this process as a worker and a scheduler (this one's,
        # or an earlier worker's) holds the timers queue's lock.
        redis = Redis.from_url(self.settings.redis_url)
        # The scheduler locks the queues its worker listens on (all of them by default).
        args = list(self.args)
        queues = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--queue"] or ["timers"]
        key = RQScheduler.get_locking_key(self.settings.queue_prefix + queues[0])
        deadline = time.monotonic() + deadline_seconds(timeout or 0.0)
        try:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}")
                registered = any(w.pid == self.proc.pid for w in Worker.all(connection=redis))
                if registered and redis.exists(key):
                    return
                time.sleep(0.1)
        finally:
            redis.close()
        raise RuntimeError("worker did not start its scheduler")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM: RQ's warm shutdown (finish the current job, release the locks); whatever
        of its process group is left after it exited is killed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()
        self.proc = None
        self._clear_stale_locks()

    def _clear_stale_locks(self) -> None:
        """With no live worker left, the scheduler locks are stale: the group kill can catch
        the scheduler child before it released them (a loaded machine), and the next worker
        would then see a lock, take itself for ready, and only retry to schedule after RQ's
        120 s fallback period. Removed as their expiry would."""
        redis = Redis.from_url(self.settings.redis_url)
        try:
            if not any(_alive(w.pid) for w in Worker.all(connection=redis)):
                for name in self.settings.queue_names:
                    redis.delete(RQScheduler.get_locking_key(name))
        except Exception:  # Redis itself may be down in a crash test
            pass
        finally:
            redis.close()

    def _kill_group(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group is gone already
            pass
        self.proc.wait()

    def restart(self) -> WorkerProcess:
        """Graceful stop, then a fresh process."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL (a crash); the dead scheduler's locks are removed as their expiry would."""
        if self.proc is None:
            return
        self._kill_group()  # the worker, its scheduler and its work-horse, as in a crash
        self.proc = None
        try:
            redis = Redis.from_url(self.settings.redis_url)
            for name in self.settings.queue_names:
                redis.delete(RQScheduler.get_locking_key(name))
            redis.close()
        except Exception:  # Redis itself may be down in a crash test
            pass


_WORKERS = pytest.StashKey[list[WorkerProcess]]()


def _track(request: pytest.FixtureRequest, worker: WorkerProcess) -> WorkerProcess:
    request.node.stash.setdefault(_WORKERS, []).append(worker)
    return worker


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """A failing test's report carries the tail of each of its workers' logs: what the worker
    did (or did not) is usually the reason, and the subprocess's output is otherwise lost."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    workers: list[WorkerProcess] = item.stash.get(_WORKERS, [])
    for number, worker in enumerate(workers, start=1):
        tail = worker.log_tail()
        if tail:
            report.sections.append((f"worker {number} {' '.join(worker.args)}".strip(), tail))


@pytest.fixture
def rq_worker(
    request: pytest.FixtureRequest, settings: Settings, services: object, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """A ``b24app worker`` handle, not yet running: call ``.start()`` once the test's setup is
    done (and ``env`` set); killed after the test."""
    worker = _track(request, WorkerProcess(settings, log_path=tmp_path / "worker.log"))
    yield worker
    worker.kill()


@pytest.fixture
def rq_worker_factory(
    request: pytest.FixtureRequest, settings: Settings, services: object, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """``make(*args, env=None, start=True)`` → another worker; all stopped after the test."""
    workers: list[WorkerProcess] = []

    def make(*args: str, env: dict[str, str] | None = None, start: bool = True) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(workers) + 1}.log"
        worker = _track(request, WorkerProcess(settings, env, args, log_path=log_path))
        workers.append(worker)
        return worker.start() if start else worker

    yield make
    for worker in workers:
        worker.stop()
