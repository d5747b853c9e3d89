"""The app's pages inside Bitrix24: the KPI dashboard (main page and CRM analytics menu), the
lead tab, the ROI calculator, the settings page, CSV exports and the dashboard's JSON.

Every framed POST is verified (:func:`trust.verify_frame`); the page then carries a signed
session token ``t`` for its own follow-up requests. The lead and deal tabs show an item only
after Bitrix24 confirms that the viewer may read it (:func:`trust.confirm_item_access`).
Views only read the app's own store — figures come from SQL aggregation, never from paging
the CRM.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint
from flask import current_app
from flask import make_response
from flask import render_template
from flask import request
from flask import Response
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError
from sqlalchemy import delete
from sqlalchemy import select

from b24app import directory
from b24app import i18n
from b24app.appointments.config import align_with_template
from b24app.appointments.reinvite_kpi import reinvite_conversion
from b24app.appointments.resources import sides
from b24app.appointments.resources import stored_notices
from b24app.appointments.views import journey_appointments
from b24app.consent.contact import Contact
from b24app.consent.privacy import client_of_journey
from b24app.consent.privacy import erase_client
from b24app.consent.privacy import export_client
from b24app.consent.records import record_consent
from b24app.consent.records import summary as consent_summary
from b24app.errors import ApiError
from b24app.kpi import csv as kpi_csv
from b24app.kpi import metrics
from b24app.kpi import roi
from b24app.kpi import rollup
from b24app.placements import settings_form
from b24app.placements import trust
from b24app.placements.schemas import FrameFormSchema
from b24app.placements.schemas import FrameQuerySchema
from b24app.placements.schemas import JourneyRefSchema
from b24app.placements.schemas import LeadTabOptionsSchema
from b24app.placements.schemas import PeriodSchema
from b24app.placements.schemas import RoiFormSchema
from b24app.placements.trust import Viewer
from b24app.settings import load_settings
from b24app.settings import save_settings
from b24app.settings import WEEKDAYS
from b24app.storage.models import CampaignCost
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Timer
from b24app.web import frameable
from b24app.web import read_form
from b24app.web import read_query
from b24app.web import services

bp = Blueprint("placements", __name__)

TOKEN_HEADER = "X-B24App-Session"


# -- who is asking ------------------------------------------------------------------------


def _frame_viewer() -> tuple[Viewer, dict[str, Any]]:
    """Verify a framed POST from Bitrix24; return the viewer and the parsed form."""
    query = FrameQuerySchema().load(read_query())
    form = FrameFormSchema().load(read_form())
    viewer = trust.verify_frame(services(), form, i18n.lang_from(query["LANG"]))
    return viewer, form


def _token_viewer(form: dict[str, Any] | None = None) -> Viewer:
    """The viewer of a follow-up request: the session token from the ``X-B24App-Session``
    header or the POSTed form (``t``), never from the URL — query strings end up in access
    logs, browser history and Referer headers (issue 10, item 6)."""
    if "t" in request.args:
        raise ApiError(400, "The session token goes in the form body or a header, not the URL.")
    token = request.headers.get(TOKEN_HEADER)
    if not token and form is not None:
        token = form.get("t")
    lang = request.args.get("lang")
    return trust.viewer_from_token(
        services(),
        current_app.config["SECRET_KEY"],
        token,
        i18n.lang_from(lang) if lang else None,
    )


def _page(template: str, viewer: Viewer, status: int = 200, **context: Any) -> Response:
    """Render a page for ``viewer``: fresh session token, language helpers, frameable."""
    token = trust.issue_token(current_app.config["SECRET_KEY"], viewer)
    lang = viewer.lang

    def t(key: str, **params: Any) -> str:
        return i18n.translate(lang, key, **params)

    html = render_template(
        template,
        viewer=viewer,
        token=token,
        lang=lang,
        t=t,
        num=lambda v, d=0: i18n.fmt_number(v, lang, d),
        pct=lambda v: i18n.fmt_pct(v, lang),
        money=lambda v: i18n.fmt_money(v, lang),
        dur=lambda v: i18n.fmt_duration(v, lang),
        **context,
    )
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return frameable(response, viewer.domain)


def _reauth(viewer: Viewer) -> Response:
    return _page("reauth.html", viewer)


# -- dashboard ----------------------------------------------------------------------------


def _period_args(source: dict[str, Any] | None = None, lang: str = "ru") -> dict[str, Any]:
    """The period picker's values (query of a GET, or the POSTed form).

    :raise ApiError 400: a date outside the supported years, with a message in ``lang``.
    """
    data = request.args.to_dict() if source is None else source
    try:
        return PeriodSchema().load({k: v for k, v in data.items() if isinstance(v, str)})
    except ValidationError as err:
        raise ApiError(400, i18n.translate(lang, "period.invalid"), err.messages) from err


def _dashboard(viewer: Viewer, args: dict[str, Any]) -> tuple[metrics.Dashboard, dict[str, Any]]:
    with services().db() as session:
        settings = load_settings(session, viewer.portal_id)
        # The date inputs are always in the form; they count only for a custom period.
        custom = args.get("period") in (None, "custom")
        period = metrics.period_for(
            args.get("period"),
            settings["time_zone"],
            date_from=args.get("date_from") if custom else None,
            date_to=args.get("date_to") if custom else None,
        )
        by_week = None if args.get("view") is None else args["view"] == "week"
        dashboard = rollup.compute_dashboard(
            session, viewer.portal_id, period, settings, by_week=by_week
        )
        # re-invitations after a no-show (b24app/appointments/reinvite_kpi.py)
        dashboard.extra["reinvite"] = reinvite_conversion(
            session, viewer.portal_id, period.start, period.end
        )
    return dashboard, settings


def _names(viewer: Viewer) -> directory.Names:
    """The portal's names of sources, stages and employees from the app's directory table
    (no REST call); an empty or stale directory queues its refresh and the page goes on."""
    with services().db() as session:
        names = directory.load_names(session, viewer.portal_id, viewer.lang)
    if directory.is_stale(names):
        directory.request_refresh(services(), viewer.member_id, viewer.portal_id)
    return names


def _period_params(dashboard: metrics.Dashboard, args: dict[str, Any]) -> dict[str, Any]:
    period = dashboard.period
    if period.preset == "custom":
        params: dict[str, Any] = {
            "period": "custom",
            "from": period.first_day.isoformat(),
            "to": period.last_day.isoformat(),
        }
    else:
        params = {"period": period.preset}
    if args.get("view"):
        params["view"] = args["view"]
    return params


def _chart_data(dashboard: metrics.Dashboard, lang: str) -> dict[str, Any]:
    return {
        "labels": [row["label"] for row in dashboard.trend],
        "series": [
            {"key": "leads", "label": i18n.translate(lang, "kpi.leads"),
             "data": [row["leads"] for row in dashboard.trend]},
            {"key": "bookings", "label": i18n.translate(lang, "kpi.bookings"),
             "data": [row["bookings"] for row in dashboard.trend]},
            {"key": "confirmed", "label": i18n.translate(lang, "kpi.confirmed"),
             "data": [row["confirmed"] for row in dashboard.trend]},
            {"key": "no_shows", "label": i18n.translate(lang, "kpi.no_show"),
             "data": [row["no_shows"] for row in dashboard.trend]},
        ],
    }  # fmt: skip


def _render_dashboard(viewer: Viewer, args: dict[str, Any] | None) -> Response:
    """The dashboard; ``args`` None = the period picker's values were refused (the default
    period is shown with a message, status 400)."""
    if viewer.needs_reauth:
        return _reauth(viewer)
    period_error = None
    if args is None:
        period_error = i18n.translate(viewer.lang, "period.invalid")
        args = {}
    dashboard, _settings = _dashboard(viewer, args)
    names = _names(viewer)
    return _page(
        "dashboard.html",
        viewer,
        status=400 if period_error else 200,
        period_error=period_error,
        d=dashboard,
        names=names,
        period_params=_period_params(dashboard, args),
        presets=metrics.PRESETS,
        chart_json=json.dumps(_chart_data(dashboard, viewer.lang), ensure_ascii=False).replace(
            "</", "<\\/"
        ),
        target_state=lambda name, value: metrics.target_state(name, value, dashboard.targets),
        top_sources=dashboard.top_sources(3),
        iter_dimension=lambda dim: metrics.iter_dimension(dashboard, dim),
        employees=dashboard.employees(),
        marketing=dashboard.marketing(),
        tables=kpi_csv.TABLES,
        crm_mode=_crm_mode(viewer.portal_id),
    )


def _dashboard_post() -> Response:
    """A framed open from Bitrix24, or the page's own POST (session token ``t`` in the
    body: the period picker, the navigation)."""
    form = read_form()
    if "t" not in form:
        viewer, _form = _frame_viewer()
        return _render_dashboard(viewer, {})
    viewer = _token_viewer(form)
    return _render_dashboard(viewer, _checked_period(form))


def _checked_period(source: dict[str, Any] | None = None) -> dict[str, Any] | None:
    try:
        return _period_args(source)
    except ApiError:
        return None


def _crm_mode(portal_id: int) -> str:
    """``classic`` / ``simple``: the dashboard says which mode the portal is in."""
    with services().db() as session:
        portal = session.get(Portal, portal_id)
        return (portal.crm_mode if portal is not None else None) or "classic"


@bp.post("/")
def main_page() -> ResponseReturnValue:
    """The app's main page (``PLACEMENT=DEFAULT``): the KPI dashboard."""
    return _dashboard_post()


@bp.post("/dashboard")
def dashboard_placement() -> ResponseReturnValue:
    """``CRM_ANALYTICS_MENU``: the KPI dashboard; also the period picker's target."""
    return _dashboard_post()


@bp.get("/")
@bp.get("/dashboard")
def dashboard_page() -> ResponseReturnValue:
    """The dashboard for a period (session token in the header; a bare GET is 401)."""
    viewer = _token_viewer()
    return _render_dashboard(viewer, _checked_period())


@bp.get("/api/dashboard.json")
def dashboard_json() -> ResponseReturnValue:
    """The dashboard figures as JSON (for charts and scripts on the page)."""
    viewer = _token_viewer()
    dashboard, _settings = _dashboard(viewer, _period_args(None, viewer.lang))
    body = {
        "period": {
            "from": dashboard.period.first_day.isoformat(),
            "to": dashboard.period.last_day.isoformat(),
        },
        "total": _plain(dashboard.total.as_dict()),
        "replies": {
            "median_s": dashboard.replies.median_s,
            "p90_s": dashboard.replies.p90_s,
            "count": dashboard.replies.count,
        },
        "chart": _chart_data(dashboard, viewer.lang),
        "employees": [_plain(r) for r in dashboard.employees()],
        "marketing": [_plain(r) for r in dashboard.marketing()],
        "appointments": dashboard.extra.get("appointments"),
        "reinvite": dashboard.extra.get("reinvite"),
    }
    response = current_app.response_class(
        json.dumps(body, ensure_ascii=False), mimetype="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in data.items()}


@bp.post("/export/<table>.csv")
def export_csv_post(table: str) -> ResponseReturnValue:
    """The page's CSV buttons: a POST form with the token and the period in the body."""
    form = read_form()
    return _export(table, _token_viewer(form), form)


@bp.get("/export/<table>.csv")
def export_csv(table: str) -> ResponseReturnValue:
    """One dashboard table as CSV (session token in the header)."""
    return _export(table, _token_viewer(), None)


def _export(table: str, viewer: Viewer, form: dict[str, Any] | None) -> ResponseReturnValue:
    """One dashboard table as CSV, for the same period as the page."""
    if table not in kpi_csv.TABLES:
        raise ApiError(404, "No such table.")
    dashboard, _settings = _dashboard(viewer, _period_args(form, viewer.lang))
    headers, rows = kpi_csv.table(dashboard, table, viewer.lang, _names(viewer))
    body = kpi_csv.to_csv(headers, rows, viewer.lang)
    name = f"{table}_{dashboard.period.first_day}_{dashboard.period.last_day}.csv"
    return _download(body, "text/csv; charset=utf-8", name)


def _download(body: str, content_type: str, name: str) -> Response:
    """``body`` as a file the browser saves under ``name``, never cached."""
    response = current_app.response_class(body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# -- lead tab -----------------------------------------------------------------------------


def _local(value: dt.datetime | None, tz: str, lang: str) -> str:
    if value is None:
        return i18n.DASH
    local = value.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(tz))
    return local.strftime("%d.%m.%Y %H:%M" if lang == "ru" else "%Y-%m-%d %H:%M")


@bp.post("/deal-tab")
def deal_tab() -> ResponseReturnValue:
    """``CRM_DEAL_DETAIL_TAB``: the journey this deal belongs to (from its lead, if converted)."""
    return _item_tab("deal", _deal_journey_key)


@bp.post("/lead-tab")
def lead_tab() -> ResponseReturnValue:
    """``CRM_LEAD_DETAIL_TAB``: this lead's timeline, SLA timers, AI tag and channel."""
    return _item_tab("lead", lambda viewer, lead_id: lead_id)


def _deal_journey_key(viewer: Viewer, deal_id: int) -> int:
    from b24app.leads.journeys import find_journey
    from b24app.leads.journeys import journey_key

    with services().db() as session:
        journey = find_journey(session, viewer.portal_id, deal_id=deal_id)
        return journey_key(journey) if journey is not None else -deal_id


def _item_tab(entity: str, key_of: Callable[[Viewer, int], int]) -> ResponseReturnValue:
    """A CRM detail tab of ``entity`` showing the journey ``key_of`` finds for the item, once
    Bitrix24 confirms the viewer may read the item."""
    viewer, form = _frame_viewer()
    options = LeadTabOptionsSchema().load(form["PLACEMENT_OPTIONS"])
    if viewer.needs_reauth:
        return _reauth(viewer)
    item_id = options["ID"]
    refused = _refused_item(viewer, form, entity, item_id)
    if refused is not None:
        return refused
    return _journey_tab(viewer, key_of(viewer, item_id), item_id, entity)


def _refused_item(
    viewer: Viewer, form: dict[str, Any], entity: str, item_id: int
) -> Response | None:
    """None when Bitrix24 confirms the viewer may read the item (trust.confirm_item_access);
    else the page saying so, with nothing of the item: 403 refused, 503 could not ask."""
    try:
        trust.confirm_item_access(services(), viewer, form["AUTH_ID"], entity, item_id)
    except ApiError as exc:
        key = "tab.no_access" if exc.status == 403 else "tab.unconfirmed"
        return _page("notice.html", viewer, status=exc.status, notice_title=f"{key}_title",
                     notice_text=key)  # fmt: skip
    return None


def _journey_tab(
    viewer: Viewer, lead_id: int, entity_id: int, entity: str, **extra: Any
) -> Response:
    """The tab of a journey (``lead_id`` is its key, see b24app.leads.journeys), with its
    client's consent (b24app/consent)."""
    from b24app.leads.journeys import journey_where

    with services().db() as session:
        settings = load_settings(session, viewer.portal_id)
        tz = settings["time_zone"]
        lead = session.scalar(
            select(Journey).where(Journey.portal_id == viewer.portal_id, journey_where(lead_id))
        )
        changes = session.scalars(
            select(JourneyStageChange)
            .where(
                JourneyStageChange.portal_id == viewer.portal_id,
                JourneyStageChange.journey_key == lead_id,
            )
            .order_by(JourneyStageChange.changed_at)
        ).all()
        timers = session.scalars(
            select(Timer)
            .where(Timer.portal_id == viewer.portal_id, Timer.journey_key == lead_id)
            .order_by(Timer.due_at)
        ).all()
        names = directory.load_names(session, viewer.portal_id, viewer.lang)
        info = _lead_view(lead, changes, timers, tz, viewer.lang, settings, names) if lead else None
        visits = (
            journey_appointments(session, viewer.portal_id, lead.id, tz, viewer.lang)
            if lead
            else []
        )
        client = client_of_journey(session, viewer.portal_id, lead) if lead else Contact()
        consent = consent_summary(session, viewer.portal_id, client)
        consent["records"] = [
            {"kind": r.kind, "source": r.source, "channel": r.channel, "text": r.text,
             "at": _local(r.recorded_at, tz, viewer.lang)}
            for r in consent["records"]
        ]  # fmt: skip
        consent["text"] = settings["consent"]["text"].get(viewer.lang) or ""
    if directory.is_stale(names):
        directory.request_refresh(services(), viewer.member_id, viewer.portal_id)
    return _page(
        "lead_tab.html", viewer, lead_id=entity_id, lead=info, entity=entity, appointments=visits,
        consent=consent, journey_key=lead_id, **extra,
    )  # fmt: skip


# -- the client's consent and data (b24app/consent, docs/privacy.md) ----------------------


def _journey_client(portal_id: int, key: int) -> tuple[Journey | None, Contact]:
    from b24app.leads.journeys import journey_where

    with services().db() as session:
        journey = session.scalar(
            select(Journey).where(Journey.portal_id == portal_id, journey_where(key))
        )
        client = client_of_journey(session, portal_id, journey) if journey else Contact()
        if journey is not None:
            session.expunge(journey)
    return journey, client


@bp.post("/consent")
def consent_post() -> ResponseReturnValue:
    """An employee records the client's advertising consent from the tab (with the text the
    client was shown, in the viewer's language, and who recorded it)."""
    form = read_form()
    viewer = _token_viewer(form)
    if viewer.needs_reauth:
        return _reauth(viewer)
    ref = JourneyRefSchema().load(form)
    _, client = _journey_client(viewer.portal_id, ref["key"])
    if not client.known:
        raise ApiError(409, "The journey has no known client (no contact, no chat).")
    with services().db() as session:
        text = load_settings(session, viewer.portal_id)["consent"]["text"].get(viewer.lang)
        record_consent(session, viewer.portal_id, client, source="tab", text=text or "",
                       by=viewer.user_id)  # fmt: skip
    return _journey_tab(viewer, ref["key"], ref["entity_id"], ref["entity"], recorded=True)


def _privacy_request() -> tuple[Viewer, dict[str, Any], Journey | None, Contact] | Response:
    """An administrator's export or erase request: the viewer, the form, the journey and its
    client; or the page refusing it."""
    form = read_form()
    viewer = _token_viewer(form)
    if viewer.needs_reauth:
        return _reauth(viewer)
    if not viewer.is_admin:
        return _page("notice.html", viewer, status=403, notice_title="settings.admins_only_title",
                     notice_text="consent.tab.admins_only")  # fmt: skip
    ref = JourneyRefSchema().load(form)
    journey, client = _journey_client(viewer.portal_id, ref["key"])
    if journey is None and not client.known:
        raise ApiError(404, "No such journey.")
    return viewer, ref, journey, client


def _privacy_action(
    action: Callable[[Viewer, dict[str, Any], Journey | None, Contact], ResponseReturnValue],
) -> Callable[[], ResponseReturnValue]:
    """The view doing ``action`` on an administrator's export or erase request
    (:func:`_privacy_request`), or answering with the page refusing it."""

    @functools.wraps(action)
    def view() -> ResponseReturnValue:
        found = _privacy_request()
        return found if isinstance(found, Response) else action(*found)

    return view


@bp.post("/privacy/export")
@_privacy_action
def privacy_export(
    viewer: Viewer, ref: dict[str, Any], journey: Journey | None, client: Contact
) -> ResponseReturnValue:
    """The client's data in the app as a JSON download (administrators only)."""
    with services().db() as session:
        data = export_client(session, viewer.portal_id, client, journey)
    body = json.dumps(data, ensure_ascii=False, indent=1)
    name = f"client-{ref['entity']}-{ref['entity_id']}.json"
    return frameable(_download(body, "application/json; charset=utf-8", name), viewer.domain)


@bp.post("/privacy/erase")
@_privacy_action
def privacy_erase(
    viewer: Viewer, ref: dict[str, Any], journey: Journey | None, client: Contact
) -> ResponseReturnValue:
    """Erase the client's personal data from the app (administrators only; ``confirm=yes``)."""
    if ref["confirm"] != "yes":
        raise ApiError(400, "Erasing needs confirm=yes.")
    with services().db() as session:
        removed = erase_client(session, viewer.portal_id, client, by=viewer.user_id,
                               journey=journey)  # fmt: skip
    summary = ", ".join(f"{kind} {n}" for kind, n in removed.items())
    return _page("notice.html", viewer, notice_title="consent.erased_title",
                 notice_text="consent.erased", notice_params={"removed": summary})  # fmt: skip


def _lead_view(
    lead: Journey,
    changes: Any,
    timers: Any,
    tz: str,
    lang: str,
    settings: dict[str, Any],
    names: directory.Names | None = None,
) -> dict[str, Any]:
    names = names or directory.Names(lang)
    reply_s = None
    if lead.first_reply_at is not None:
        reply_s = max((lead.first_reply_at - lead.created_at).total_seconds(), 0.0)
    events: list[tuple[dt.datetime, str, str]] = [
        (lead.created_at, i18n.translate(lang, "lead.created"), "created")
    ]
    if lead.first_reply_at is not None:
        events.append((lead.first_reply_at, i18n.translate(lang, "lead.first_reply"), "reply"))
    # The stage history in order: by time, and within the same second by the portal's own
    # order of its statuses (New before In progress), then by arrival.
    ordered = sorted(
        changes,
        key=lambda c: (c.changed_at, _stage_rank(c.stage, names.status_sort(c.status_id)), c.id),
    )
    for change in ordered:
        events.append(
            (change.changed_at, _stage_label(change.stage, change.status_id, names, lang), "stage")
        )
    for timer in timers:
        if timer.fired_at is not None:
            what = i18n.translate(lang, f"policy.{timer.policy}") + " — "
            what += i18n.translate(lang, f"timer.{timer.level}")
            kind = "escalation" if timer.level == "escalate" else "breach"
            events.append((timer.fired_at, what, kind))
    events.sort(key=lambda e: e[0])
    target_s = float(settings["sla"]["first_reply"]["minutes"]) * 60
    return {
        "lead_id": lead.lead_id,
        "created": _local(lead.created_at, tz, lang),
        "first_reply": _local(lead.first_reply_at, tz, lang),
        "reply_s": reply_s,
        "reply_ok": None if reply_s is None else reply_s <= target_s,
        "is_ai": lead.is_ai,
        "ai_channel": lead.ai_channel,
        "channel": lead.channel,
        "source": names.source(lead.source_id),
        "stage_name": names.status(lead.status_id),
        "utm_campaign": lead.utm_campaign,
        "stage": lead.stage,
        "booking": _local(lead.booking_at, tz, lang) if lead.booking_at else None,
        "deal_id": lead.deal_id,
        "from_lead": lead.lead_id if lead.deal_id is not None else None,
        "pipeline": lead.category_id,
        "deal_stage": lead.deal_stage_id,
        "deal_stage_name": names.deal_stage(lead.deal_stage_id),
        "events": [
            {"at": _local(at, tz, lang), "what": what, "kind": kind} for at, what, kind in events
        ],
        "timers": [
            {
                "policy": i18n.translate(lang, f"policy.{timer.policy}"),
                "level": i18n.translate(lang, f"timer.{timer.level}")
                if timer.level in ("remind", "escalate")
                else timer.level,
                "state": timer.state,
                "state_label": i18n.translate(lang, f"timer.{timer.state}"),
                "due": _local(timer.due_at, tz, lang),
                "fired": _local(timer.fired_at, tz, lang) if timer.fired_at else None,
            }
            for timer in timers
        ],
    }


def _stage_rank(stage: str, portal_sort: int | None) -> tuple[int, int]:
    order = {"new": 0, "other": 1, "qualified": 2, "confirmed": 3, "came": 4, "no_show": 4}
    return (portal_sort if portal_sort is not None else 10_000, order.get(stage, 5))


def _stage_label(stage: str, status_id: str, names: directory.Names, lang: str) -> str:
    """The portal's name of the lead status ("В работе") or deal stage ("Выполняется"), else
    our stage with the code. A journey's moves carry both; only ``NEW`` is both a lead status
    and a deal stage id, and it reads as the lead's."""
    return (
        names.status(status_id)
        or names.deal_stage(status_id)
        or (i18n.translate(lang, f"stage.{stage}") + (f" ({status_id})" if status_id else ""))
    )


# -- ROI ----------------------------------------------------------------------------------


def _roi_defaults(viewer: Viewer) -> tuple[dict[str, Any], bool]:
    """The form's starting values: the portal's real 30 days before install and the last 30
    days, where there is data; the worked example otherwise."""
    example = roi.EXAMPLE
    values: dict[str, Any] = {
        "leads_before": example.leads_before,
        "conversion_before": example.conversion_before_pct,
        "check_before": example.check_before,
        "leads_after": example.leads_after,
        "conversion_after": example.conversion_after_pct,
        "check_after": example.check_after,
        "one_off_cost": example.one_off_cost,
        "monthly_cost": example.monthly_cost,
        "monthly_savings": Decimal(0),
        "margin": Decimal(100),
        "months": 12,
    }
    real = False
    with services().db() as session:
        settings = load_settings(session, viewer.portal_id)
        tz = settings["time_zone"]
        sla = float(settings["sla"]["first_reply"]["minutes"])
        portal = session.get(Portal, viewer.portal_id)
        after = metrics.period_for("30d", tz)
        sides = [("after", after)]
        if portal is not None and portal.installed_at is not None:
            install_day = metrics.local_today(tz, portal.installed_at)
            before = metrics.Period(
                install_day - dt.timedelta(days=30), install_day - dt.timedelta(days=1), tz
            )
            sides.append(("before", before))
        for side, period in sides:
            counts = metrics.summary_counts(session, viewer.portal_id, period, sla)
            if counts.leads and counts.paid_visits:
                real = True
                values[f"leads_{side}"] = Decimal(counts.leads)
                values[f"conversion_{side}"] = Decimal(
                    str(metrics.ratio_pct(counts.paid_visits, counts.leads))
                )
                values[f"check_{side}"] = counts.aov
    return values, real


@bp.post("/roi")
def roi_post() -> ResponseReturnValue:
    """The ROI calculator opened from the navigation, or its form submitted (POST body)."""
    form = read_form()
    submitted = {k: v for k, v in form.items() if k not in ("t", "lang", "nav")}
    return _roi(_token_viewer(form), submitted)


@bp.get("/roi")
def roi_page() -> ResponseReturnValue:
    """The ROI calculator (session token in the header; inputs in the query)."""
    submitted = {k: v for k, v in request.args.items() if k != "lang"}
    return _roi(_token_viewer(), submitted)


def _roi(viewer: Viewer, submitted: dict[str, Any]) -> ResponseReturnValue:
    """The ROI calculator: prefilled with real figures, recalculated with entered ones."""
    if viewer.needs_reauth:
        return _reauth(viewer)
    errors: list[str] = []
    real = False
    if submitted:
        try:
            values = RoiFormSchema().load(submitted)
        except ValidationError as err:
            errors = settings_form.flatten_errors(err.messages)
            values = dict(submitted)
    else:
        values, real = _roi_defaults(viewer)
    result = None
    if not errors:
        result = roi.calculate(
            roi.RoiInputs(
                leads_before=Decimal(values["leads_before"]),
                conversion_before_pct=Decimal(values["conversion_before"]),
                check_before=Decimal(values["check_before"]),
                leads_after=Decimal(values["leads_after"]),
                conversion_after_pct=Decimal(values["conversion_after"]),
                check_after=Decimal(
                    values["check_after"]
                    if values.get("check_after") is not None
                    else values["check_before"]
                ),
                one_off_cost=Decimal(values["one_off_cost"]),
                monthly_cost=Decimal(values["monthly_cost"]),
                monthly_savings=Decimal(values.get("monthly_savings") or 0),
                margin_pct=Decimal(values.get("margin") or 100),
                months=int(values.get("months") or 12),
            )
        )
    return _page(
        "roi.html",
        viewer,
        status=400 if errors else 200,
        values=values,
        result=result,
        errors=errors,
        real=real,
    )


# -- settings -----------------------------------------------------------------------------


def _costs(session: Any, portal_id: int) -> list[settings_form.CostLine]:
    rows = session.scalars(
        select(CampaignCost)
        .where(CampaignCost.portal_id == portal_id)
        .order_by(CampaignCost.month.desc(), CampaignCost.utm_campaign)
    ).all()
    return [settings_form.CostLine(r.utm_campaign, r.month, r.cost) for r in rows]


def _settings_page(
    viewer: Viewer,
    *,
    values: dict[str, Any] | None = None,
    costs_text: str | None = None,
    errors: list[str] | None = None,
    saved: bool = False,
    status: int = 200,
) -> Response:
    if values is None or costs_text is None:
        with services().db() as session:
            values = settings_form.settings_to_form(load_settings(session, viewer.portal_id))
            costs_text = settings_form.costs_to_text(_costs(session, viewer.portal_id))
    registration = _registration(viewer.portal_id)  # read once for the page's three blocks
    fields_by_entity: dict[str, list[dict[str, str]]] = registration.get("date_fields") or {}
    return _page(
        "settings.html",
        viewer,
        status=status,
        values=values,
        costs_text=costs_text,
        errors=errors or [],
        saved=saved,
        weekdays=WEEKDAYS,
        policies=settings_form.POLICIES,
        pipelines=_pipelines(viewer.portal_id, registration),
        workflow_templates=list(registration.get("workflow_templates") or []),
        date_fields=fields_by_entity,
        date_choices=[f"{e}:{f['id']}" for e, rows in fields_by_entity.items() for f in rows],
        add_missing=_add_missing(viewer.portal_id),
        booking_sides=_booking_sides(viewer),
    )


def _booking_sides(viewer: Viewer) -> list[dict[str, Any]]:
    """Who sends what per Booking resource type, from the stored settings and the last
    reading of Booking's notifications (read by the booking jobs, never by this view)."""
    with services().db() as session:
        section = load_settings(session, viewer.portal_id)["appointments"]
    notices = stored_notices(services(), viewer.member_id)
    return sides(notices, section["offsets"], bool(section.get("booking_nudge")))


def _admins_only(viewer: Viewer) -> Response:
    """What a non-admin gets instead of the settings page: nothing of it (issue 10, item 9)."""
    return _page("notice.html", viewer, status=403, notice_title="settings.admins_only_title",
                 notice_text="settings.admins_only")  # fmt: skip


def _add_missing(portal_id: int) -> bool:
    with services().db() as session:
        return bool(load_settings(session, portal_id).get("deal_stages_add_missing"))


def _pipelines(portal_id: int, registration: dict[str, Any]) -> list[dict[str, Any]]:
    """The deal pipelines with their stages and stage maps (the settings page's deal block)."""
    from b24app.placements.deal_stages_form import pipelines_view

    with services().db() as session:
        return pipelines_view(registration, load_settings(session, portal_id))


def _registration(portal_id: int) -> dict[str, Any]:
    with services().db() as session:
        portal = session.get(Portal, portal_id)
        return dict(portal.registration or {}) if portal is not None else {}


def _workflow_templates(portal_id: int) -> list[dict[str, Any]]:
    """The portal's lead/deal business process templates read at registration (the
    reminders' "business process" channel is picked from them)."""
    return list(_registration(portal_id).get("workflow_templates") or [])


@bp.get("/settings")
def settings_page() -> ResponseReturnValue:
    """The settings page (portal administrators only; session token in the header)."""
    viewer = _token_viewer()
    if viewer.needs_reauth:
        return _reauth(viewer)
    if not viewer.is_admin:
        return _admins_only(viewer)
    return _settings_page(viewer)


@bp.post("/settings")
def settings_post() -> ResponseReturnValue:
    """Framed open (Bitrix24 POST with credentials) or a save from the page (token ``t``).

    Saving needs an admin (checked server-side at verification, carried in the signed token);
    invalid input is shown with its errors and nothing is stored.
    """
    form = read_form()
    if "t" not in form:
        viewer, _form = _frame_viewer()
        if viewer.needs_reauth:
            return _reauth(viewer)
        return _settings_page(viewer) if viewer.is_admin else _admins_only(viewer)
    viewer = _token_viewer(form)
    if viewer.needs_reauth:
        return _reauth(viewer)
    if not viewer.is_admin:
        return _admins_only(viewer)
    if "nav" in form:  # the navigation tab: show the page
        return _settings_page(viewer)
    changes = settings_form.form_to_changes(form)
    if changes.get("appointments"):
        align_with_template(changes["appointments"], _workflow_templates(viewer.portal_id))
    costs, cost_errors = settings_form.parse_costs(form.get("costs"))
    errors = [f"costs: {e}" for e in cost_errors]
    add_before = _add_missing(viewer.portal_id)
    try:
        with services().db() as session:
            save_settings(session, viewer.portal_id, changes, user_id=viewer.user_id)
            if errors:
                raise ValidationError({"costs": cost_errors})
            session.execute(delete(CampaignCost).where(CampaignCost.portal_id == viewer.portal_id))
            for line in costs:
                session.add(
                    CampaignCost(
                        portal_id=viewer.portal_id,
                        utm_campaign=line.utm_campaign,
                        month=line.month,
                        cost=line.cost,
                    )
                )
    except ValidationError as err:
        if not errors or "costs" not in err.messages:
            errors = settings_form.flatten_errors(err.messages) + errors
        errors = settings_form.explain(errors, viewer.lang) + errors
        submitted = {k: v for k, v in form.items() if k not in ("t", "costs")}
        return _settings_page(
            viewer,
            values=submitted,
            costs_text=str(form.get("costs") or ""),
            errors=errors,
            status=400,
        )
    if changes.get("deal_stages_add_missing") and not add_before:
        # The admin now allows adding the missing deal stages: the registration job does it.
        from b24app.install.service import enqueue_registration

        with services().db() as session:
            portal = session.get(Portal, viewer.portal_id)
            member_id = portal.member_id if portal is not None else None
        if member_id:
            enqueue_registration(services(), member_id)
    return _settings_page(viewer, saved=True)
