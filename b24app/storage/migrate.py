"""Run Alembic migrations programmatically (the CLI, tests and the demo use this)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def revision(database_url: str, message: str) -> None:
    """Autogenerate a new migration from the models (developers only)."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)


class SchemaBehind(RuntimeError):
    """The database's schema is not at the migration this code needs."""


@dataclass(frozen=True)
class SchemaState:
    """Which migration the database is at (``None``: no schema at all) and the code's head."""

    revision: str | None
    head: str

    @property
    def current(self) -> bool:
        return self.revision == self.head


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration of this code (a single head)."""
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return ",".join(sorted(heads))


def schema_state(engine: Engine) -> SchemaState:
    """The migration ``engine``'s database is at, read from ``alembic_version``."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return SchemaState(",".join(sorted(heads)) or None, head_revision())


def is_embedded(database_url: str) -> bool:
    """True for the embedded SQLite store (one file, one machine: migrating at start is safe)."""
    return make_url(database_url).get_backend_name() == "sqlite"


def ensure_schema(database_url: str) -> SchemaState:
    """Called by ``serve``, ``worker`` and ``cron`` before they start.

    The embedded SQLite store is brought to the head migration (one file on one machine, so
    there is no other release running on it). Any other database is only checked: behind the
    code, ``SchemaBehind`` says to run ``b24app db upgrade`` — migrating a shared PostgreSQL
    from whichever process starts first would race the others and the old release.
    """
    if is_embedded(database_url):
        upgrade(database_url)
    engine = create_engine(database_url)
    try:
        state = schema_state(engine)
    finally:
        engine.dispose()
    if not state.current:
        at = state.revision or "empty (no tables)"
        raise SchemaBehind(
            f"The database schema is at {at}; this release needs {state.head}. "
            "Run `b24app db upgrade` first."
        )
    return state
