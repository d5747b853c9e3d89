"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic import command

from b24app.storage.migrate import alembic_config


def test_migrations_match_the_models(database_url: str) -> None:
    """``alembic check``: no difference between the migrated database and the models."""
    command.check(alembic_config(database_url))
