"""Issue 10, item 3: serve, worker, cron and the WSGI entry refuse default or short secrets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from b24app import cli
from b24app.config import require_strong_secrets
from b24app.config import Settings
from b24app.config import weak_secrets

STRONG = "s" * 16 + "0123456789abcdef0123456789"


def _env(**values: str | None) -> dict[str, str | None]:
    """Every B24APP_* variable of this process unset, then ``values``."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("B24APP_")}
    env.update({f"B24APP_{k}": v for k, v in values.items()})
    return env


def test_defaults_and_short_values_are_weak() -> None:
    assert weak_secrets(Settings()) == ["B24APP_SECRET_KEY", "B24APP_CLIENT_SECRET"]
    assert weak_secrets(Settings(secret_key=STRONG, client_secret="x" * 31)) == [
        "B24APP_CLIENT_SECRET"
    ]
    assert weak_secrets(Settings(secret_key=STRONG, client_secret=STRONG)) == []
    require_strong_secrets(Settings(secret_key=STRONG, client_secret=STRONG))


@pytest.mark.parametrize("command", [["serve"], ["serve", "--dev"], ["worker"], ["cron"]])
@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "B24APP_SECRET_KEY"),
        ({"SECRET_KEY": STRONG}, "B24APP_CLIENT_SECRET"),
        ({"SECRET_KEY": "short", "CLIENT_SECRET": STRONG}, "B24APP_SECRET_KEY"),
        ({"SECRET_KEY": STRONG, "CLIENT_SECRET": "change-me"}, "B24APP_CLIENT_SECRET"),
    ],
)
def test_commands_refuse_to_start(command: list[str], values: dict[str, str], named: str) -> None:
    """Exit status 2 and one line naming the variable and how to generate a value; the
    command never got as far as connecting anywhere (Redis/database URLs point nowhere)."""
    env = _env(REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL="sqlite:////nonexistent/x.db",
               **values)  # fmt: skip
    result = CliRunner().invoke(cli.main, command, env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0]
    assert "secrets.token_urlsafe(48)" in lines[0]


def test_wsgi_entry_refuses_to_load() -> None:
    """``gunicorn b24app.wsgi:app`` with the default secret: the import fails, one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("B24APP_")}
    env["B24APP_REDIS_URL"] = "redis://127.0.0.1:1/0"
    proc = subprocess.run(
        [sys.executable, "-c", "import b24app.wsgi"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "B24APP_SECRET_KEY" in proc.stderr


def test_wsgi_entry_loads_with_strong_secrets(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("B24APP_")}
    env.update({"B24APP_SECRET_KEY": STRONG, "B24APP_CLIENT_SECRET": STRONG,
                "B24APP_REDIS_URL": "redis://127.0.0.1:1/0",
                "B24APP_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", "import b24app.wsgi; print(b24app.wsgi.app.name)"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
