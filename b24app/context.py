"""Services shared by the web app and the RQ workers, with no Flask in sight.

One :class:`Services` object per process holds the settings, the database, Redis, the queues
and a factory for per-portal Bitrix24 clients. The Flask factory builds it and stores it in
``app.extensions["b24app"]``; a worker builds it once at start-up. Jobs (plain functions that
take primitives) reach it through :func:`current`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field
from http.cookiejar import DefaultCookiePolicy
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
    import requests

    from b24app.bitrix.client import BitrixClient
    from b24app.storage.portals import PortalAuth

log = logging.getLogger(__name__)

# REST log rows of the current job, while it defers them (see Services.deferred_rest_log).
_REST_LOG_BUFFER: ContextVar[list[dict[str, Any]] | None] = ContextVar(
    "b24app_rest_log_buffer", default=None
)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    queues: dict[str, Queue] = field(default_factory=dict)
    # Set by tests to run enqueued work synchronously in-process (unit tests only).
    is_async: bool = True
    _http: threading.local = field(default_factory=threading.local, repr=False)

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on error."""
        with transaction(self.sessions) as session:
            yield session

    def queue(self, name: str) -> Queue:
        """The RQ queue ``events``, ``timers``, ``default`` or ``bulk``."""
        return self.queues[self.settings.queue_prefix + name]

    def bitrix(
        self, member_id: str, *, interactive: bool = False, auth: PortalAuth | None = None
    ) -> BitrixClient:
        """A REST client for one portal, refreshing its tokens as needed (``interactive``:
        a person waits for this call — it may use the top of the portal's REST bucket;
        ``auth``: the tokens the caller just read with the portal row, saving a read)."""
        from b24app.bitrix.client import BitrixClient
        from b24app.storage.portals import DbTokenStore

        return BitrixClient(
            member_id=member_id,
            tokens=DbTokenStore(self.sessions),
            redis=self.redis,
            settings=self.settings,
            log_sink=self.rest_log_sink,
            session=self.http_session(),
            interactive=interactive,
            auth=auth,
        )

    def http_session(self) -> requests.Session:
        """This thread's HTTP session, shared by its REST clients: a job reuses the
        keep-alive (TLS) connection of the previous one instead of a handshake per client.
        Cookies are refused — REST calls carry their token, and nothing of one portal's
        answer may travel with the next request."""
        session = getattr(self._http, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
            self._http.session = session
        return session

    @contextmanager
    def deferred_rest_log(self) -> Iterator[list[dict[str, Any]]]:
        """Collect this context's REST log rows instead of writing each in its own
        transaction; the caller adds them to its closing transaction
        (:meth:`add_rest_log`), and whatever is left is written on exit."""
        rows: list[dict[str, Any]] = []
        token = _REST_LOG_BUFFER.set(rows)
        try:
            yield rows
        finally:
            _REST_LOG_BUFFER.reset(token)
            if rows:
                self._write_rest_log(list(rows))
                rows.clear()

    def add_rest_log(self, session: Session) -> None:
        """Add the deferred REST log rows of this context to ``session`` (its transaction)."""
        from b24app.storage.models import RestLog

        rows = _REST_LOG_BUFFER.get()
        if rows:
            session.add_all([RestLog(**row) for row in rows])
            rows.clear()

    def rest_log_sink(self, row: dict[str, Any]) -> None:
        """Persist one masked REST request/response (the marketplace's 3-day log)."""
        rows = _REST_LOG_BUFFER.get()
        if rows is not None:
            rows.append(row)
            return
        self._write_rest_log([row])

    def _write_rest_log(self, rows: list[dict[str, Any]]) -> None:
        from b24app.storage.models import RestLog

        try:
            with self.db() as session:
                session.add_all([RestLog(**row) for row in rows])
        except Exception:  # a log write must never break the call it describes
            log.exception("could not store REST log row")

    def after_fork(self) -> None:
        """In a forked child: neither the parent's pooled DB connections nor its HTTP
        keep-alive sockets may be reused."""
        self.engine.dispose(close=False)
        self._http = threading.local()

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
