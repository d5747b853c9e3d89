"""Shared fixtures: a private redis-server, a private database (SQLite or PostgreSQL), the
services, the Flask app and its test client.

Set ``B24APP_TEST_DATABASE=postgresql`` to run the suite on PostgreSQL (127.0.0.1:5432, trust
auth; ``-m db`` selects the tests that reach a database): each test session creates its own
database and drops it at the end, so nobody else's data is touched. Redis is a ``redis-server`` started on a free port.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from b24app import context
from b24app import create_app
from b24app.config import Settings
from b24app.storage.migrate import upgrade
from b24app.storage.models import Base
from b24app.worker import TIMER_POLICY_MODULES
from devportal.ports import free_port
from tests.postgres import empty_postgres_database

pytest_plugins = [
    "tests.plugins.live",
    "tests.plugins.worker",
    "tests.plugins.install",
    "tests.plugins.browser",
    "tests.plugins.demo",
]

# Fixtures that reach a database the suite's B24APP_TEST_DATABASE chooses: a test whose
# fixture closure holds one is marked ``db``, and the PostgreSQL pass of ./dev test runs only
# those (``-m db``); the rest (the emulator, parsers, the demo on its own SQLite file) run once.
DATABASE_FIXTURES = frozenset({"database_url", "empty_postgres"})


# The longest tests (``--durations`` of ./dev test), longest first: they start first, so the
# two xdist workers end together instead of one idling while the other runs a long test it
# picked up last (the SQLite pass collects tests/reliability and tests/test_*.py at the end).
# Only the order changes; a name no longer here or no longer long costs nothing but order.
LONG_TESTS = (
    "tests/reliability/test_load.py::",
    "tests/test_hostile_input.py::test_every_field_of_every_route_in_every_shape_is_never_a_500",
    "tests/leads/test_backfill.py::test_backfill_completes_resumes_and_saves_requests",
    "tests/appointments/test_reschedule.py::",
    "tests/leads/test_coalesce.py::test_a_simple_mode_burst_costs_no_request_per_lead",
    "tests/test_hostile_input.py::test_random_shapes_in_authenticated_payloads_never_500",
    "tests/reliability/test_faults.py::",
    "tests/leads/test_deal_backfill.py::test_deal_backfill_completes_resumes_and_saves_requests",
    "tests/appointments/test_integration.py::",
    "tests/assistant/test_outbox.py::test_waiting_answers_of_many_chats_share_requests",
    "tests/bitrix/test_client_emulator.py::test_burst_at_the_real_2_per_second_limit",
    "tests/appointments/test_coexist.py::",
    "tests/assistant/test_holds.py::",
    "tests/assistant/test_flow.py::test_two_clients_",
    "tests/appointments/test_channels.py::",
    "tests/leads/test_coalesce.py::test_a_burst",
    "tests/sla/test_integration.py::",
    "tests/appointments/test_outcome.py::",
)


def _long_first(item: pytest.Item) -> int:
    return next(
        (n for n, prefix in enumerate(LONG_TESTS) if item.nodeid.startswith(prefix)),
        len(LONG_TESTS),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)
    items.sort(key=_long_first)  # stable: the rest keep their order


# The documented wire formats the tests feed the app (provenance: tests/fixtures/README.md).

# The test session runs timer jobs in its own process (fire_timer called directly, RQ's
# SimpleWorker), so it registers the timer policies as the worker does (b24app/worker.py).
for _module in TIMER_POLICY_MODULES:
    importlib.import_module(_module)

FIXTURES = Path(__file__).parent / "fixtures"


class RedisServer:
    """A private redis-server this test session owns (and may kill and restart)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="b24app-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60  # redis-server start on a loaded machine
        while time.monotonic() < deadline:
            try:
                if Redis(port=self.port).ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart_empty(self) -> None:
        """Kill and start again with no data (no persistence): a Redis crash."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this test session (worker, with xdist)."""
    if os.environ.get("B24APP_TEST_DATABASE", "sqlite") == "postgresql":
        with empty_postgres_database("b24app_test") as url:
            upgrade(url)
            yield url
    else:
        url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "b24app.sqlite")
        upgrade(url)
        yield url


@pytest.fixture
def app_port() -> int:
    """The port the app is (or would be) served on; ``public_url`` points at it."""
    return free_port()


# The app's credentials, shared by ``settings`` and the emulator (tests/plugins/live.py),
# which needs no database: its own tests stay out of the PostgreSQL pass.
CLIENT_ID = "local.test.app"
CLIENT_SECRET = "test-client-secret-0123456789abcdef0123"


@pytest.fixture
def public_url(app_port: int) -> str:
    return f"http://127.0.0.1:{app_port}"


@pytest.fixture
def settings(database_url: str, redis_server: RedisServer, public_url: str) -> Settings:
    return Settings(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        public_url=public_url,
        database_url=database_url,
        redis_url=redis_server.url,
        secret_key="test-secret-key-0123456789abcdef01234567",
        allow_insecure_endpoints=True,
        rest_timeout=10.0,
        metrics_token="test-metrics-token",
    )


def _clean_database(services: context.Services) -> None:
    with services.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def services(settings: Settings) -> Iterator[context.Services]:
    """Services on the private Redis and database; both are emptied after each test."""
    svc = context.build_services(settings)
    context.set_current(svc)
    yield svc
    svc.redis.flushdb()
    _clean_database(svc)
    context.set_current(None)
    svc.dispose()


@pytest.fixture
def app(services: context.Services, settings: Settings):  # type: ignore[no-untyped-def]
    return create_app({"TESTING": True, "B24APP_SERVICES": services}, settings=settings)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()
