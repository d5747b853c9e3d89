"""PostgreSQL databases a test makes for itself on the test server (127.0.0.1:5432, trust)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy import text


@contextmanager
def empty_postgres_database(prefix: str) -> Iterator[str]:
    """The URL of a new empty database ``<prefix>_<random>``, dropped on leaving (even if a
    connection is still open). ``B24APP_TEST_POSTGRES_URL`` names the server's database to
    connect to for that."""
    base = os.environ.get(
        "B24APP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
