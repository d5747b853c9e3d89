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


@pytest.mark.parametrize(
    "weak",
    [{}, {"secret_key": STRONG}, {"client_secret": STRONG}, {"secret_key": "short",
                                                               "client_secret": STRONG}],
)  # fmt: skip
def test_the_factory_refuses_default_secrets(services, settings, capsys, weak) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 item 3a: ``flask --app b24app run`` and ``gunicorn 'b24app:create_app()'``
    bypass the CLI; the factory itself refuses (exit status 2, one line on stderr)."""
    from b24app import create_app
    from b24app.config import InsecureSecret

    defaults = {"secret_key": Settings.secret_key, "client_secret": Settings.client_secret}
    chosen = settings.replace(**{**defaults, **weak})
    with pytest.raises(InsecureSecret) as info:
        create_app({"TESTING": True, "B24APP_SERVICES": services}, settings=chosen)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "B24APP_" in err[0] and "secrets.token_urlsafe(48)" in err[0]


def test_the_factory_starts_with_weak_secrets_only_when_told(services, settings) -> None:  # type: ignore[no-untyped-def]
    """``B24APP_ALLOW_WEAK_SECRETS=1``: the explicit switch for a throwaway local run."""
    from b24app import create_app

    chosen = settings.replace(secret_key=Settings.secret_key, client_secret=Settings.client_secret,
                              allow_weak_secrets=True)  # fmt: skip
    app = create_app({"TESTING": True, "B24APP_SERVICES": services}, settings=chosen)
    assert app.test_client().get("/health").status_code == 200
    assert Settings.from_env({"B24APP_ALLOW_WEAK_SECRETS": "1"}).allow_weak_secrets is True


def test_flask_run_style_import_refuses_default_secrets() -> None:
    """``create_app()`` with nothing but the environment (what ``flask --app b24app`` and
    ``gunicorn 'b24app:create_app()'`` call): refused before connecting anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("B24APP_")}
    env["B24APP_REDIS_URL"] = "redis://127.0.0.1:1/0"
    env["B24APP_DATABASE_URL"] = "sqlite:////nonexistent/x.db"
    proc = subprocess.run(
        [sys.executable, "-c", "import b24app; b24app.create_app()"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "B24APP_SECRET_KEY" in proc.stderr
