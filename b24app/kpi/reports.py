"""Scheduled KPI reports through Bitrix24 notifications (``im.notify.system.add``).

* **daily** — a 5-line summary of yesterday (portal time zone) to the owner, due at
  ``reports.daily_at`` local time;
* **weekly** — each manager's own figures for the last complete ISO week, and the team table
  (**weekly_team**) to the owner, due on ``reports.weekly_day`` at ``reports.weekly_at``.

:func:`send_due_reports` is a plain job for cron (every few minutes): it decides per portal
what is due and claims a ``ReportRun`` row (unique per portal, kind, period and recipient)
*before* sending, so a report never goes out twice; a failed send releases its claim so the
next run retries, and the notification ``TAG`` makes even a retried delivery replace, not
duplicate, the first one. The owner is ``owner_user_id`` from the settings, else the admin who
installed the app.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b24app import context
from b24app import logs
from b24app.bitrix.budget import bulk_rest
from b24app.context import Services
from b24app.directory import load_names
from b24app.directory import Names
from b24app.i18n import fmt_duration
from b24app.i18n import fmt_money
from b24app.i18n import fmt_pct
from b24app.i18n import lang_from
from b24app.i18n import translate
from b24app.kpi import metrics
from b24app.settings import load_settings
from b24app.settings import WEEKDAYS
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import ReportRun
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)


class ReportsFailed(RuntimeError):
    """Some portals' reports could not be sent (they are retried on the next run)."""


@dataclass(frozen=True)
class DueReport:
    kind: str  # daily / weekly
    key: str  # the ReportRun period: 2026-11-22 or 2026-W47
    period: metrics.Period


def _hhmm(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def due_reports(settings: dict[str, Any], now: dt.datetime) -> list[DueReport]:
    """Which reports are due at ``now`` (naive UTC) by the portal's schedule and time zone."""
    schedule = settings["reports"]
    if not schedule.get("enabled"):
        return []
    tz = settings["time_zone"]
    local = now.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(tz))
    today = local.date()
    due = []
    if local.time() >= _hhmm(schedule["daily_at"]):
        yesterday = today - dt.timedelta(days=1)
        due.append(
            DueReport("daily", yesterday.isoformat(), metrics.Period(yesterday, yesterday, tz))
        )
    if WEEKDAYS[today.weekday()] == schedule["weekly_day"] and local.time() >= _hhmm(
        schedule["weekly_at"]
    ):
        this_monday = today - dt.timedelta(days=today.weekday())
        first = this_monday - dt.timedelta(days=7)
        year, week, _ = first.isocalendar()
        due.append(
            DueReport(
                "weekly",
                f"{year}-W{week:02d}",
                metrics.Period(first, first + dt.timedelta(days=6), tz),
            )
        )
    return due


# -- message texts ------------------------------------------------------------------------


def daily_message(dashboard: metrics.Dashboard, lang: str, names: Names | None = None) -> str:
    """The owner's daily summary: a title and five lines."""
    total = dashboard.total
    ai = dashboard.by["ai"].get(True, metrics.Counts()).leads
    label = names.source if names is not None else (lambda key: key)
    sources = (
        ", ".join(f"{label(key) or '—'} ({c.leads})" for key, c in dashboard.top_sources(3)) or "—"
    )
    day = dashboard.period.first_day.strftime("%d.%m.%Y" if lang == "ru" else "%Y-%m-%d")
    lines = [
        "[B]" + translate(lang, "report.daily.title", day=day) + "[/B]",
        translate(lang, "report.daily.leads", leads=total.leads, ai=ai),
        translate(
            lang,
            "report.daily.bookings",
            bookings=total.bookings,
            conversion=fmt_pct(total.conversion_pct, lang),
        ),
        translate(
            lang,
            "report.daily.no_show",
            confirmed=total.confirmed,
            no_show=fmt_pct(total.no_show_pct, lang),
        ),
        translate(
            lang,
            "report.daily.reply",
            median=fmt_duration(dashboard.replies.median_s, lang),
            sla=fmt_pct(total.sla_pct, lang),
        ),
        translate(lang, "report.daily.sources", sources=sources),
    ]
    assistant = (dashboard.extra or {}).get("assistant") or {}
    if assistant.get("dialogs"):
        lines.append(
            translate(
                lang,
                "report.daily.assistant",
                dialogs=assistant["dialogs"],
                booked=fmt_pct(assistant["booked_pct"], lang),
                handoffs=fmt_pct(assistant["handoff_pct"], lang),
            )
        )
    return "\n".join(lines)


def weekly_message(row: dict[str, Any], week: str, lang: str) -> str:
    """One manager's week."""
    return "\n".join(
        [
            "[B]" + translate(lang, "report.weekly.title", week=week) + "[/B]",
            translate(
                lang,
                "report.weekly.line",
                leads=row["leads"],
                median=fmt_duration(row["reply_median_s"], lang),
                sla=fmt_pct(row["sla_pct"], lang),
                breaches=row["breaches"],
            ),
            translate(
                lang,
                "report.weekly.line2",
                bookings=row["bookings"],
                conversion=fmt_pct(row["conversion_pct"], lang),
                no_show=fmt_pct(row["no_show_pct"], lang),
                revenue=fmt_money(row["revenue"], lang),
            ),
        ]
    )


def team_message(
    rows: list[dict[str, Any]], week: str, lang: str, names: Names | None = None
) -> str:
    """The per-employee table of the week for the owner."""
    lines = ["[B]" + translate(lang, "report.team.title", week=week) + "[/B]"]
    for row in rows:
        manager = row["manager"]
        shown = names.user(manager) if names is not None else f"ID {manager}"
        who = f"[USER={manager}]{shown}[/USER]" if manager else translate(lang, "group.unassigned")
        lines.append(
            translate(
                lang,
                "report.team.line",
                manager=who,
                leads=row["leads"],
                conversion=fmt_pct(row["conversion_pct"], lang),
                sla=fmt_pct(row["sla_pct"], lang),
                revenue=fmt_money(row["revenue"], lang),
            )
        )
    return "\n".join(lines)


# -- sending ------------------------------------------------------------------------------


def _claim(services: Services, portal_id: int, kind: str, key: str, user_id: int) -> int | None:
    """Insert the ReportRun row; ``None`` if this report was already sent (or is being sent)."""
    try:
        with services.db() as session:
            run = ReportRun(portal_id=portal_id, kind=kind, period=key, recipient_user_id=user_id)
            session.add(run)
            session.flush()
            return run.id
    except IntegrityError:
        return None


def _release(services: Services, run_id: int) -> None:
    with services.db() as session:
        session.execute(delete(ReportRun).where(ReportRun.id == run_id))


def _send(
    services: Services,
    member_id: str,
    portal_id: int,
    kind: str,
    key: str,
    user_id: int,
    message: str,
) -> bool:
    run_id = _claim(services, portal_id, kind, key, user_id)
    if run_id is None:
        return False
    try:
        services.bitrix(member_id).call(
            "im.notify.system.add",
            {"USER_ID": user_id, "MESSAGE": message, "TAG": f"b24app:{kind}:{key}:{user_id}"},
        )
    except Exception:
        _release(services, run_id)
        raise
    log.info("sent %s report %s to user %s", kind, key, user_id)
    return True


def _owner(settings: dict[str, Any], portal: Portal) -> int | None:
    owner = settings.get("owner_user_id") or portal.installer_user_id
    return int(owner) if owner else None


def send_portal_reports(services: Services, portal_id: int, now: dt.datetime) -> int:
    """Send what is due for one portal; returns how many notifications went out."""
    with services.db() as session:
        portal = session.get(Portal, portal_id)
        if portal is None or portal.status != PortalStatus.ACTIVE:
            return 0
        settings = load_settings(session, portal_id)
        member_id, lang, owner = portal.member_id, lang_from(portal.lang), _owner(settings, portal)
        due = due_reports(settings, now)
        names = load_names(session, portal_id, lang)
        work: list[tuple[str, str, int, str]] = []
        for report in due:
            dashboard = metrics.compute_dashboard(
                session, portal_id, report.period, settings, now=now
            )
            if report.kind == "daily":
                if owner and not _already_sent(session, portal_id, "daily", report.key, owner):
                    work.append(("daily", report.key, owner, daily_message(dashboard, lang, names)))
                continue
            rows = [r for r in dashboard.employees() if r["leads"]]
            for row in rows:
                if row["manager"] and not _already_sent(
                    session, portal_id, "weekly", report.key, row["manager"]
                ):
                    work.append(
                        (
                            "weekly",
                            report.key,
                            row["manager"],
                            weekly_message(row, report.key, lang),
                        )
                    )
            if (
                owner
                and rows
                and not _already_sent(session, portal_id, "weekly_team", report.key, owner)
            ):
                work.append(
                    ("weekly_team", report.key, owner, team_message(rows, report.key, lang, names))
                )
    sent = 0
    with logs.bind(member_id=member_id):
        for kind, key, user_id, message in work:
            if _send(services, member_id, portal_id, kind, key, user_id, message):
                sent += 1
    return sent


def _already_sent(session: Session, portal_id: int, kind: str, key: str, user_id: int) -> bool:
    # A cheap pre-check so figures are not formatted for reports that went out; the unique
    # claim in _send is what actually guarantees once.
    return (
        session.scalar(
            select(ReportRun.id).where(
                ReportRun.portal_id == portal_id,
                ReportRun.kind == kind,
                ReportRun.period == key,
                ReportRun.recipient_user_id == user_id,
            )
        )
        is not None
    )


def send_due_reports(now: dt.datetime | None = None) -> int:
    """Cron job: send every due report of every active portal; returns how many went out.

    One portal's failure does not stop the others; the job raises at the end if any portal
    failed, so RQ records it (and the next run retries what was not sent).
    """
    services = context.current()
    moment = now or utc_now()
    with services.db() as session:
        portal_ids = list(
            session.scalars(select(Portal.id).where(Portal.status == PortalStatus.ACTIVE))
        )
    sent = 0
    failed: list[int] = []
    for portal_id in portal_ids:
        try:
            with bulk_rest():  # nobody waits on a report: urgent calls go first
                sent += send_portal_reports(services, portal_id, moment)
        except Exception:
            log.exception("reports failed for portal %s", portal_id)
            failed.append(portal_id)
    if failed:
        raise ReportsFailed(f"reports failed for {len(failed)} portal(s); {sent} sent")
    return sent
