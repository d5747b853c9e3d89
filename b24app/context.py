"""Services shared by the web app and the RQ workers, with no Flask in sight.

One :class:`Services` object per process holds the settings, the database, Redis, the queues
and a factory for per-portal Bitrix24 clients. The Flask factory builds it and stores it in
``app.extensions["b24app"]``; a worker builds it once at start-up. Jobs (plain functions that
take primitives) reach it through :func:`current`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TYPE_CHECKING

from redis import Redis
from rq import Queue
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from b24app.config import Settings
from b24app.storage import crypto
from b24app.storage.db import make_engine
from b24app.storage.db import make_session_factory
from b24app.storage.db import transaction

if TYPE_CHECKING:
    from b24app.bitrix.client import BitrixClient

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    queues: dict[str, Queue] = field(default_factory=dict)
    # Set by tests to run enqueued work synchronously in-process (unit tests only).
    is_async: bool = True

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on error."""
        with transaction(self.sessions) as session:
            yield session

    def queue(self, name: str) -> Queue:
        """The RQ queue ``events``, ``timers``, ``default`` or ``bulk``."""
        return self.queues[self.settings.queue_prefix + name]

    def bitrix(self, member_id: str, *, interactive: bool = False) -> BitrixClient:
        """A REST client for one portal, refreshing its tokens as needed (``interactive``:
        a person waits for this call — it may use the top of the portal's REST bucket)."""
        from b24app.bitrix.client import BitrixClient
        from b24app.storage.portals import DbTokenStore

        return BitrixClient(
            member_id=member_id,
            tokens=DbTokenStore(self.sessions),
            redis=self.redis,
            settings=self.settings,
            log_sink=self.rest_log_sink,
            interactive=interactive,
        )

    def rest_log_sink(self, row: dict[str, Any]) -> None:
        """Persist one masked REST request/response (the marketplace's 3-day log)."""
        from b24app.storage.models import RestLog

        try:
            with self.db() as session:
                session.add(RestLog(**row))
        except Exception:  # a log write must never break the call it describes
            log.exception("could not store REST log row")

    def dispose(self) -> None:
        self.engine.dispose()
        self.redis.close()


_current: Services | None = None


def build_services(settings: Settings, *, redis: Redis | None = None) -> Services:
    """Create the engine, the Redis connection and the queues from settings."""
    crypto.configure(settings.encryption_keys, settings.secret_key)
    engine = make_engine(settings.database_url)
    conn = redis if redis is not None else Redis.from_url(settings.redis_url)
    services = Services(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        redis=conn,
    )
    services.queues = {name: Queue(name, connection=conn) for name in settings.queue_names}
    return services


def set_current(services: Services | None) -> None:
    """Make ``services`` the process-wide services that jobs use."""
    global _current
    _current = services


def current() -> Services:
    """The services of this process; a worker builds them from the environment on first use."""
    global _current
    if _current is None:
        _current = build_services(Settings.from_env())
    return _current
