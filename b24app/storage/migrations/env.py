"""Alembic environment: the URL comes from the caller (``b24app db upgrade``) or B24APP_*."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from b24app.config import Settings
from b24app.storage.db import make_engine
from b24app.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # The store runs with foreign keys on (b24app/storage/db.py); a batch migration
            # copies a table and drops the old one, and that DROP would fire the ON DELETE
            # actions of the tables referring to it (appointments.journey_id -> SET NULL).
            # The pragma only takes effect outside a transaction, so before Alembic's.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
