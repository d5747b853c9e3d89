"""The ``b24app`` command line: serve, worker, demo, db, backfill."""

from __future__ import annotations

import sys

import click

from b24app.config import InsecureSecret
from b24app.config import require_strong_secrets
from b24app.config import Settings


def _ensure_schema(settings: Settings) -> None:
    """Migrate the embedded SQLite store; refuse to start on a database behind the code."""
    from b24app.storage.migrate import ensure_schema
    from b24app.storage.migrate import SchemaBehind

    try:
        ensure_schema(settings.database_url)
    except SchemaBehind as exc:
        raise click.ClickException(str(exc)) from None


def _checked_settings() -> Settings:
    """``Settings.from_env()``, refusing default or short secrets (one line on stderr)."""
    settings = Settings.from_env()
    try:
        require_strong_secrets(settings)
    except InsecureSecret as exc:
        click.echo(exc.message, err=True)
        raise
    return settings


@click.group()
def main() -> None:
    """b24app: Bitrix24 app for salons, clinics and trainers."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers")
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn")
def serve(host: str, port: int, workers: int, dev: bool) -> None:
    """Run the web app (gunicorn in production)."""
    settings = _checked_settings()
    _ensure_schema(settings)
    if dev:
        from b24app import create_app

        create_app(settings=settings).run(host=host, port=port)
        return
    from gunicorn.app.wsgiapp import run as gunicorn_run

    sys.argv = [
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        "-",
        "b24app.wsgi:app",
    ]
    gunicorn_run()


@main.command()
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="assistant, timers, events, default, bulk (all of them by default)",
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty")
@click.option("--fork", is_flag=True, help="Run each job in a forked work-horse (isolation)")
def worker(queues: tuple[str, ...], burst: bool, fork: bool) -> None:
    """Run an RQ worker with RQ's scheduler (timers need it)."""
    from b24app.worker import run

    settings = _checked_settings()
    _ensure_schema(settings)
    run(settings, list(queues) or None, burst=burst, fork=fork)


@main.command()
def cron() -> None:
    """Run the recurring jobs (timer reconciliation, reports, REST-log purge)."""
    from b24app import context
    from b24app import logs
    from b24app.schedule import make_cron

    settings = _checked_settings()
    _ensure_schema(settings)
    logs.configure(settings.log_level)
    services = context.build_services(settings)
    context.set_current(services)
    make_cron(services).start()


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations to B24APP_DATABASE_URL."""
    from b24app.storage.migrate import upgrade

    upgrade(Settings.from_env().database_url, revision)
    click.echo("database is at " + revision)


@db.command("revision")
@click.argument("message")
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (developers)."""
    from b24app.storage.migrate import revision

    revision(Settings.from_env().database_url, message)


@main.command()
@click.option("--member-id", required=True, help="The portal's member_id")
@click.option("--restart", is_flag=True, help="Start over instead of resuming")
def backfill(member_id: str, restart: bool) -> None:
    """Import a portal's existing leads and status moves (resumes where it stopped)."""
    from tqdm import tqdm

    from b24app import context
    from b24app import logs
    from b24app.leads.backfill import backfill_portal
    from b24app.leads.backfill import count_leads
    from b24app.leads.backfill import PortalNotFound

    settings = Settings.from_env()
    logs.configure(settings.log_level)
    services = context.build_services(settings)
    context.set_current(services)
    try:
        total = count_leads(services, member_id)
    except Exception:  # the bar works without a total
        total = 0
    with tqdm(total=total or None, unit="lead", desc="backfill") as bar:

        def progress(imported: int, in_round: int) -> None:
            bar.n = imported
            bar.refresh()

        try:
            imported = backfill_portal(
                member_id, services=services, progress=progress, restart=restart
            )
        except PortalNotFound:
            raise click.ClickException(f"no installed portal {member_id}") from None
        bar.n = imported
        bar.refresh()
    click.echo(f"{imported} leads imported")


if __name__ == "__main__":  # pragma: no cover
    main()


EXPORT_WEBHOOK_ENV = "B24APP_EXPORT_WEBHOOK"


@main.command("export")
@click.option(
    "--webhook",
    required=True,
    envvar=EXPORT_WEBHOOK_ENV,
    show_envvar=True,
    metavar="URL",
    help=(
        "Incoming webhook URL https://<portal>/rest/<user_id>/<code>/ — the code is a"
        f" credential: set it in {EXPORT_WEBHOOK_ENV} instead (an argument is visible to every"
        " user of the machine in the process list and stays in the shell history)"
    ),
)
@click.option(
    "--out",
    "out_dir",
    default="b24-export",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for the CSV files",
)
@click.option("--entity", "entities", multiple=True,
              type=click.Choice(["leads", "stage_history", "statuses", "users"]),
              help="What to export (default: all)")  # fmt: skip
def export_command(webhook: str, out_dir: str, entities: tuple[str, ...]) -> None:
    """Export a portal's leads, stage history, statuses and users to CSV through an incoming
    webhook (no app install needed; fast-bitrix24 batches the pages).

    Give the webhook in B24APP_EXPORT_WEBHOOK, not on the command line, e.g.:
    read -rs B24APP_EXPORT_WEBHOOK; export B24APP_EXPORT_WEBHOOK; b24app export
    """
    from pathlib import Path

    from click.core import ParameterSource

    from b24app.export import ENTITIES
    from b24app.export import export
    from b24app.export import ExportError

    if click.get_current_context().get_parameter_source("webhook") == ParameterSource.COMMANDLINE:
        click.echo(
            f"warning: --webhook puts the webhook's secret code in the process list and the"
            f" shell history; set {EXPORT_WEBHOOK_ENV} instead",
            err=True,
        )
    try:
        counts = export(webhook, Path(out_dir), entities or tuple(ENTITIES))
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    for name, n in counts.items():
        click.echo(f"{name}: {n} rows → {Path(out_dir) / (name + '.csv')}")
