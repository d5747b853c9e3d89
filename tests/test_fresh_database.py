"""A fresh database: the embedded SQLite store is migrated at start; any other database
behind the code makes ``serve``/``worker``/``cron`` refuse to start with what to run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlalchemy import text

from b24app.cli import main
from b24app.storage.migrate import ensure_schema
from b24app.storage.migrate import head_revision
from b24app.storage.migrate import schema_state
from b24app.storage.migrate import SchemaBehind
from b24app.storage.migrate import upgrade
from tests.conftest import free_port
from tests.postgres import empty_postgres_database
from tests.waiting import wait_for


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("B24APP_")}
    env.update({
        "B24APP_DATABASE_URL": database_url, "B24APP_REDIS_URL": redis_url,
        "B24APP_SECRET_KEY": "fresh-database-test-" + "k3y" * 16,
        "B24APP_CLIENT_SECRET": "fresh-database-test-" + "s3cr3t" * 8,
        "B24APP_METRICS_TOKEN": "fresh-database-metrics",
    })  # fmt: skip
    return env


def test_serve_on_an_empty_sqlite_file_migrates_and_answers(tmp_path, redis_server) -> None:
    """``b24app serve`` on a path with no database: the schema is created, /health is 200 and
    says which migration it is at."""
    url = "sqlite:///" + str(tmp_path / "fresh.sqlite")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "b24app.cli", "serve", "--port", str(port), "--workers", "1"],
        env=_env(url, redis_server.url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    answers: list[requests.Response] = []

    def answered() -> bool:
        assert proc.poll() is None, "serve exited"
        try:
            answers.append(
                requests.get(
                    f"http://127.0.0.1:{port}/health",
                    timeout=10,
                    headers={"Authorization": "Bearer fresh-database-metrics"},
                )
            )
        except requests.RequestException:  # not up yet, or its worker still importing the app
            return False
        return True

    try:
        wait_for(answered, what="/health answers")
        health = answers[-1]
        assert health.status_code == 200, health.text
        assert health.json()["schema"] == {
            "revision": head_revision(),
            "head": head_revision(),
            "current": True,
        }
    finally:
        proc.terminate()
        proc.wait(60)


def test_ensure_schema_migrates_sqlite_once(tmp_path) -> None:
    url = "sqlite:///" + str(tmp_path / "fresh.sqlite")
    assert ensure_schema(url).current
    assert ensure_schema(url).revision == head_revision()  # a second start changes nothing


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """An empty PostgreSQL database (skipped where the suite does not run on PostgreSQL)."""
    if os.environ.get("B24APP_TEST_DATABASE", "sqlite") != "postgresql":
        pytest.skip("PostgreSQL pass only")
    with empty_postgres_database("b24app_empty") as url:
        yield url


@pytest.mark.parametrize("command", [["serve"], ["worker", "--burst"], ["cron"]])
def test_postgres_behind_the_code_refuses_to_start(
    empty_postgres: str, redis_server, command: list[str]
) -> None:
    """No migration applied: each process refuses, names the fix, and creates nothing."""
    result = CliRunner().invoke(
        main, command, env=_env(empty_postgres, redis_server.url), catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "run `b24app db upgrade`" in result.output.casefold()
    engine = create_engine(empty_postgres)
    try:
        assert schema_state(engine).revision is None
    finally:
        engine.dispose()


def test_postgres_at_another_migration_is_behind(empty_postgres: str) -> None:
    """At a migration other than this code's head: ``ensure_schema`` refuses (and migrates
    nothing); at the head it passes."""
    upgrade(empty_postgres)
    engine = create_engine(empty_postgres)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'older_release'"))
        with pytest.raises(SchemaBehind, match="b24app db upgrade"):
            ensure_schema(empty_postgres)
        assert schema_state(engine).revision == "older_release"
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()}
            )
        assert ensure_schema(empty_postgres).current
    finally:
        engine.dispose()
