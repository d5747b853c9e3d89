"""Engine and session factory. SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from typing import cast

from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy.engine import CursorResult
from sqlalchemy.engine import Engine
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned per backend: SQLite gets WAL, foreign keys and a busy timeout so the
    web process and RQ workers can share one file."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if "poolclass" not in kwargs:  # NullPool (migrations) takes no pool sizing
        kwargs = {"pool_size": 10, "max_overflow": 20, **kwargs}
    return create_engine(url, pool_pre_ping=True, **kwargs)


def rows_affected(result: Result[Any]) -> int:
    """How many rows an UPDATE/DELETE matched (compare-and-set checks read this)."""
    return cast("CursorResult[Any]", result).rowcount


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
