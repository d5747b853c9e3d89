"""Robot jobs: do the robot's work with the domain code, then answer the waiting workflow with
``bizproc.event.send`` (``EVENT_TOKEN``, ``RETURN_VALUES``, ``LOG_MESSAGE``).

One job per robot call (``run_robot``), on the ``events`` queue, keyed by the event token's
hash (``RobotCall`` row + RQ job id), so a repeated delivery is done once. States of the
``RobotCall``: ``queued`` → ``computed`` (the outcome is stored before it is sent, so a retry
after a failed send re-sends it instead of doing the work twice) → ``sent``; or ``expired``
(Bitrix24 answered 403 ``ACCESS_DENIED``: the event token expired or was used — final, no
retry), or ``failed`` (the last attempt failed; the workflow got an error message if possible).

Invalid properties are *not* a silent failure: the job answers the workflow with
``bizproc.event.send`` carrying empty return values (so the workflow goes on instead of
waiting forever) and a ``LOG_MESSAGE`` "b24app: …" in the portal's language that names the
property and the problem. ``bizproc.event.send`` was chosen over ``bizproc.activity.log``
because a log entry alone would leave the workflow waiting for the robot.

Return value formats: ``bool`` as ``Y``/``N``, ``datetime`` as portal-local ISO 8601 with
offset, ``int``/``double`` as numbers, unknown numbers as ``""``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from rq import get_current_job
from rq import Retry
from rq.exceptions import DuplicateJobError
from rq.job import Job
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from b24app import context
from b24app import logs
from b24app import metrics
from b24app.bitrix.budget import urgent_rest
from b24app.bitrix.errors import AccessDenied
from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import BitrixError
from b24app.bitrix.errors import NotFound
from b24app.bitrix.errors import PortalUnavailable
from b24app.context import Services
from b24app.leads.journeys import crm_target
from b24app.leads.journeys import CrmTarget
from b24app.leads.journeys import find_journey
from b24app.robots import definitions as d
from b24app.robots import qualifier as q
from b24app.robots.schemas import describe_problems
from b24app.robots.schemas import document_key
from b24app.robots.schemas import load_properties
from b24app.settings import load_settings
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import RobotCall
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)

# Transient failures retry with back-off; the sum (~6 min) stays inside the default
# timeout_duration (660 s) of the event token, after which a retry could only get a 403.
RETRY_INTERVALS = [10, 30, 90, 240]
QUEUE = "events"

# What the workflow gets when the robot could not do its work: nothing that looks like a
# real result, and for the qualifier "a person must look".
EMPTY_RETURNS: dict[str, dict[str, Any]] = {
    d.MARK_AI: {"tagged": "N"},
    d.SLA_START: {"due_at": ""},
    d.SLA_STOP: {"response_seconds": ""},
    d.REMINDERS: {"reminders_scheduled": 0},
    d.QUALIFY: {"verdict": q.NEEDS_HUMAN, "confidence": 0},
    d.KPI_SNAPSHOT: {"first_reply_seconds": "", "sla_status": "none"},
}


class CallState:
    QUEUED = "queued"
    COMPUTED = "computed"
    SENT = "sent"
    EXPIRED = "expired"
    FAILED = "failed"


def token_hash(event_token: str) -> str:
    """The key a robot call is stored under (the token itself is never stored)."""
    return hashlib.sha256(event_token.encode()).hexdigest()


def job_id(portal_id: int, event_token: str) -> str:
    return f"robot-{portal_id}-{token_hash(event_token)[:40]}"


def accept_call(
    services: Services,
    portal_id: int,
    member_id: str,
    code: str,
    event_token: str,
    document_id: str,
    properties: dict[str, Any],
) -> bool:
    """Record the call and enqueue its job; ``False`` when this event token was seen before.

    The row is committed *before* the job is queued: a worker may take the job the moment it
    exists, and it must find the row (queued inside the transaction, a worker that was quick
    — or a commit that was slow — saw no row, dropped the call as lost, and the workflow
    waited forever). A failed enqueue deletes the row again, so Bitrix24's repeat can still
    be accepted; a crash between the commit and the enqueue leaves a ``queued`` row that
    :func:`requeue_lost_calls` queues within a minute.
    """
    key = document_key(document_id)
    hashed = token_hash(event_token)
    request = {"event_token": event_token, "document_id": document_id, "properties": properties}
    try:
        with services.db() as session:
            session.add(
                RobotCall(
                    portal_id=portal_id,
                    token_hash=hashed,
                    code=code,
                    journey_key=key,
                    state=CallState.QUEUED,
                    return_values={},
                    log_message="",
                    request=json.dumps(request, ensure_ascii=False),
                )
            )
    except IntegrityError:
        return False
    try:
        _enqueue(services, portal_id, member_id, code, request)
    except DuplicateJobError:
        pass  # this call's job is queued already (the lost-call sweep was quicker)
    except Exception:
        with services.db() as session:
            session.execute(
                delete(RobotCall).where(
                    RobotCall.portal_id == portal_id,
                    RobotCall.token_hash == hashed,
                    RobotCall.state == CallState.QUEUED,
                )
            )
        raise
    return True


def _enqueue(
    services: Services, portal_id: int, member_id: str, code: str, request: dict[str, Any]
) -> None:
    """Queue the job of a call stored with ``request`` (its ``RobotCall.request``, parsed)."""
    event_token, document_id = request["event_token"], request["document_id"]
    services.queue(QUEUE).enqueue_call(
        run_robot,
        args=(member_id, code, event_token, document_id, request["properties"]),
        job_id=job_id(portal_id, event_token),
        # The default description would print the arguments: the event token and
        # the client's answers must not reach the worker's log.
        description=f"robot {code} on {document_id}",
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        unique=True,
        at_front=True,  # a workflow waits: ahead of an import's event jobs (issue 14)
    )


def requeue_lost_calls(older_than_s: int = 60) -> int:
    """Cron job: queue again every accepted call whose job vanished (Redis lost its data).

    The database row is the source of truth; a call still ``queued`` after ``older_than_s``
    with no job in Redis would otherwise leave its workflow waiting forever.
    """
    services = context.current()
    cutoff = utc_now() - timedelta(seconds=older_than_s)
    requeued = 0
    with services.db() as session:
        rows = session.execute(
            select(RobotCall, Portal.member_id)
            .join(Portal, Portal.id == RobotCall.portal_id)
            .where(RobotCall.state == CallState.QUEUED, RobotCall.created_at < cutoff,
                   RobotCall.request.is_not(None), Portal.status == PortalStatus.ACTIVE)
        ).all()  # fmt: skip
        for call, member_id in rows:
            request = json.loads(call.request or "{}")
            if Job.exists(
                job_id(call.portal_id, request["event_token"]), connection=services.redis
            ):
                continue
            try:
                _enqueue(services, call.portal_id, member_id, call.code, request)
                requeued += 1
            except DuplicateJobError:
                continue
    return requeued


@dataclass
class Outcome:
    """What the workflow is told: return values and one log line."""

    return_values: dict[str, Any]
    log_message: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RobotContext:
    services: Services
    member_id: str
    portal_id: int
    lead_id: int  # the journey key (b24app.leads.journeys)
    target: CrmTarget | None  # the CRM entity the journey lives on
    lang: str
    settings: dict[str, Any]
    registration: dict[str, Any]
    called_at: dt.datetime  # naive UTC, when the robot call reached us

    @property
    def entity(self) -> tuple[int, int]:
        """(entityTypeId, id) of the CRM entity for crm.item calls."""
        if self.target is None:
            return 1, self.lead_id
        return self.target.entity_type_id, self.target.entity_id

    def t(self, ru: str, en: str) -> str:
        return ru if self.lang == "ru" else en

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.get("time_zone") or "Europe/Moscow")

    def to_utc(self, value: dt.datetime) -> dt.datetime:
        """Naive UTC from a portal-local naive or an aware datetime."""
        aware = value if value.tzinfo else value.replace(tzinfo=self.zone)
        return aware.astimezone(dt.UTC).replace(tzinfo=None)

    def local_iso(self, value: dt.datetime) -> str:
        """Portal-local ISO 8601 with offset, from naive UTC or an aware datetime."""
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(self.zone).isoformat(timespec="seconds")


def _is_last_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def run_robot(
    member_id: str, code: str, event_token: str, document_id: str, properties: dict[str, Any]
) -> str:
    """Do robot ``code`` for the lead in ``document_id`` and answer the workflow.

    Returns the final state of the call (``sent``, ``expired``, ``failed``).
    """
    services = context.current()
    key = token_hash(event_token)
    lead_id = document_key(document_id) or 0
    if lead_id < 0:
        # A deal: the journey it belongs to (a converted lead's key, or its own); the deal's
        # read is part of the answer, so it is urgent too.
        from b24app.leads.intake import deal_journey_key

        with urgent_rest():
            lead_id = deal_journey_key(services, member_id, -lead_id)
    # A workflow waits for the answer: its REST calls go before bulk reads (issue 14).
    with logs.bind(member_id=member_id, lead_id=lead_id, robot=code), urgent_rest():
        with services.db() as session:
            portal = get_portal(session, member_id)
            if portal is None:
                log.warning("robot call for an unknown portal dropped")
                return CallState.FAILED
            call = session.scalar(
                select(RobotCall).where(
                    RobotCall.portal_id == portal.id, RobotCall.token_hash == key
                )
            )
            if call is None:  # withdrawn (its enqueue failed) or the portal's data deleted
                log.warning("robot call without its record dropped")
                return CallState.FAILED
            if call.state in (CallState.SENT, CallState.EXPIRED):
                return call.state
            stored = (
                Outcome(dict(call.return_values), call.log_message)
                if call.state == CallState.COMPUTED
                else None
            )
            ctx = RobotContext(
                services=services,
                member_id=member_id,
                portal_id=portal.id,
                lead_id=lead_id,
                target=crm_target(find_journey(session, portal.id, key=lead_id), lead_id)
                if lead_id
                else None,
                lang="ru" if (portal.lang or "ru") == "ru" else "en",
                settings=load_settings(session, portal.id),
                registration=dict(portal.registration or {}),
                called_at=call.created_at,
            )
        outcome = stored or _compute(ctx, code, document_id, properties)
        if stored is None:
            _store(services, ctx.portal_id, key, CallState.COMPUTED, outcome)
        try:
            state = send_result(services, member_id, event_token, outcome)
        except Exception:
            if _is_last_attempt():
                _store(services, ctx.portal_id, key, CallState.FAILED, outcome)
                metrics.JOBS_FAILED.labels(job="robot").inc()
            raise
        _store(services, ctx.portal_id, key, state, outcome, sent=state == CallState.SENT)
        return state


def _compute(ctx: RobotContext, code: str, document_id: str, properties: dict[str, Any]) -> Outcome:
    """The robot's outcome; final problems become a readable outcome, transient ones raise."""
    empty = dict(EMPTY_RETURNS[code])
    if not ctx.lead_id:
        problem = describe_problems(code, {"_schema": ["not_a_lead"]}, ctx.lang)
        return Outcome(empty, f"{problem} ({document_id[:40]})")
    try:
        params = load_properties(code, properties)
    except ValidationError as exc:
        return Outcome(empty, describe_problems(code, exc.normalized_messages(), ctx.lang))
    try:
        return HANDLERS[code](ctx, params)
    except NotFound:
        return Outcome(
            empty,
            ctx.t(
                f"b24app: лид #{ctx.lead_id} не найден.", f"b24app: lead #{ctx.lead_id} not found."
            ),
        )
    except (AccessDenied, AuthRevoked, PortalUnavailable) as exc:
        log.warning("robot work refused by Bitrix24: %s", exc.code)
        return Outcome(
            empty,
            ctx.t(
                f"b24app: Bitrix24 отказал в доступе ({exc.code}), робот не выполнен.",
                f"b24app: Bitrix24 denied access ({exc.code}); the robot did nothing.",
            ),
        )
    except Exception as exc:
        if not _is_last_attempt():
            raise
        log.exception("robot work failed for good")
        kind = exc.code if isinstance(exc, BitrixError) else type(exc).__name__
        return Outcome(
            empty,
            ctx.t(
                f"b24app: робот не выполнен из-за ошибки ({kind}); попробуйте позже.",
                f"b24app: the robot failed ({kind}); please try again later.",
            ),
        )


def _store(
    services: Services,
    portal_id: int,
    key: str,
    state: str,
    outcome: Outcome,
    *,
    sent: bool = False,
) -> None:
    with services.db() as session:
        call = session.scalar(
            select(RobotCall).where(RobotCall.portal_id == portal_id, RobotCall.token_hash == key)
        )
        if call is None:
            return
        call.state = state
        call.return_values = outcome.return_values
        call.log_message = outcome.log_message
        if sent:
            call.sent_at = utc_now()


def send_result(services: Services, member_id: str, event_token: str, outcome: Outcome) -> str:
    """``bizproc.event.send``; ``expired`` on 403 ``ACCESS_DENIED`` (never retried: the token
    expired or was already used, and asking again can only get the same answer)."""
    try:
        services.bitrix(member_id).call(
            "bizproc.event.send",
            {
                "EVENT_TOKEN": event_token,
                "RETURN_VALUES": outcome.return_values,
                "LOG_MESSAGE": outcome.log_message,
            },
        )
    except AccessDenied as exc:
        log.warning("event token refused (%s): the workflow no longer waits", exc.code)
        return CallState.EXPIRED
    return CallState.SENT


# -- the robots -----------------------------------------------------------------------------


def mark_ai(ctx: RobotContext, params: dict[str, Any]) -> Outcome:
    from b24app.leads.tagging import tag_ai_lead

    tagged = bool(
        tag_ai_lead(ctx.services, ctx.portal_id, ctx.lead_id, params["channel"], params["note"])
    )
    channel = d.AI_CHANNELS.get(params["channel"], params["channel"])
    message = (
        ctx.t(
            f"b24app: лид отмечен как AI-лид ({channel}).",
            f"b24app: lead tagged as an AI-lead ({channel}).",
        )
        if tagged
        else ctx.t(
            "b24app: лид уже был отмечен как AI-лид.", "b24app: the lead was already tagged."
        )
    )
    return Outcome({"tagged": "Y" if tagged else "N"}, message)


def sla_start(ctx: RobotContext, params: dict[str, Any]) -> Outcome:
    from b24app.sla.engine import start_timer

    due = start_timer(
        ctx.services,
        ctx.portal_id,
        ctx.lead_id,
        params["policy"],
        minutes=params.get("minutes"),
        working_time=params.get("working_time"),
        escalate_to=params.get("escalate_to"),
    )
    due_local = ctx.local_iso(due)
    return Outcome(
        {"due_at": due_local},
        ctx.t(
            f"b24app: SLA-таймер «{params['policy']}» запущен, срок {due_local}.",
            f"b24app: SLA timer “{params['policy']}” started, due {due_local}.",
        ),
    )


def _created_at_from_crm(ctx: RobotContext) -> dt.datetime:
    type_id, entity_id = ctx.entity
    item = ctx.services.bitrix(ctx.member_id).call(
        "crm.item.get", {"entityTypeId": type_id, "id": entity_id}
    )
    created = dt.datetime.fromisoformat(str((item or {}).get("item", {})["createdTime"]))
    return ctx.to_utc(created)


def sla_stop(ctx: RobotContext, params: dict[str, Any]) -> Outcome:
    from b24app.leads.lifecycle import record_first_reply
    from b24app.sla.engine import stop_timers

    with ctx.services.db() as session:
        record_first_reply(session, ctx.portal_id, ctx.lead_id, ctx.called_at, kind="robot")
    cancelled = stop_timers(ctx.services, ctx.portal_id, ctx.lead_id)
    with ctx.services.db() as session:
        lead = _lead(session, ctx.portal_id, ctx.lead_id)
        created = lead.created_at if lead is not None else None
        replied = (lead.first_reply_at if lead is not None else None) or ctx.called_at
    if created is None:
        created = _created_at_from_crm(ctx)
    seconds = max(0, int((replied - created).total_seconds()))
    return Outcome(
        {"response_seconds": seconds},
        ctx.t(
            f"b24app: ответ зафиксирован через {seconds} с, отменено таймеров: {cancelled}.",
            f"b24app: reply recorded after {seconds} s, timers cancelled: {cancelled}.",
        ),
    )


def _offset(choice: str, custom_minutes: int | None) -> str:
    return f"{custom_minutes}m" if choice == "custom" else choice


def reminders(ctx: RobotContext, params: dict[str, Any]) -> Outcome:
    """The appointment goes to :mod:`b24app.appointments` (one per journey and time, reminded
    to the client by chat / workflow / to-do)."""
    from b24app.appointments.routes import robot_appointment

    offsets = list(
        dict.fromkeys(_offset(c, params.get("custom_minutes")) for c in params["remind_before"])
    )
    appointment = ctx.to_utc(params["appointment_time"])
    count = int(
        robot_appointment(
            ctx.services,
            ctx.portal_id,
            ctx.lead_id,
            appointment,
            service=params["service"],
            offsets=offsets,
        )
    )
    when = ctx.local_iso(appointment)
    return Outcome(
        {"reminders_scheduled": count},
        ctx.t(
            f"b24app: запланировано напоминаний: {count} (запись {when}).",
            f"b24app: reminders scheduled: {count} (appointment {when}).",
        ),
    )


def kpi_snapshot(ctx: RobotContext, params: dict[str, Any]) -> Outcome:
    with ctx.services.db() as session:
        lead = _lead(session, ctx.portal_id, ctx.lead_id)
        timers = list(
            session.scalars(
                select(Timer).where(
                    Timer.portal_id == ctx.portal_id,
                    Timer.journey_key == ctx.lead_id,
                    Timer.policy != "reminder",
                )
            )
        )
        seconds: int | str = ""
        if lead is not None and lead.first_reply_at is not None:
            seconds = max(0, int((lead.first_reply_at - lead.created_at).total_seconds()))
        status = sla_status(timers, lead.first_reply_at if lead is not None else None)
    return Outcome(
        {"first_reply_seconds": seconds, "sla_status": status},
        ctx.t(
            f"b24app: первый ответ {seconds if seconds != '' else '—'} с, SLA: {status}.",
            f"b24app: first reply {seconds if seconds != '' else '—'} s, SLA: {status}.",
        ),
    )


def sla_status(timers: list[Timer], first_reply_at: dt.datetime | None) -> str:
    """``none`` (no SLA timer), ``breached`` (a timer fired, or the reply came after the first
    due time), ``pending`` (a timer still runs), else ``ok``."""
    if not timers:
        return "none"
    if any(t.state == TimerState.FIRED for t in timers):
        return "breached"
    first_due = min(t.due_at for t in timers)
    if first_reply_at is not None and first_reply_at > first_due:
        return "breached"
    if any(t.state == TimerState.PENDING for t in timers):
        return "pending"
    return "ok"


def _lead(session: Any, portal_id: int, lead_id: int) -> Journey | None:
    return find_journey(session, portal_id, key=lead_id)


VERDICT_TEXT = {
    q.QUALIFIED: ("квалифицирован", "qualified"),
    q.NEEDS_HUMAN: ("нужен менеджер", "needs a human"),
    q.JUNK: ("мусор", "junk"),
}


def qualify(ctx: RobotContext, params: dict[str, Any]) -> Outcome:
    """Judge the answers; a qualified or unsure lead goes to a manager at once (status,
    responsible, notification); confident junk is left to the workflow's own conditions."""
    answers = q.Answers(params["goal"], params["desired_time"], params["contact"])
    conf = ctx.settings.get("qualifier") or {}
    raw = q.make_qualifier(ctx.services.settings, ctx.services.http_session()).qualify(answers)
    verdict = q.apply_threshold(raw, float(conf.get("threshold", 0.6)))
    values = {"verdict": verdict.verdict, "confidence": verdict.confidence}
    ru, en = VERDICT_TEXT[verdict.verdict]
    message = ctx.t(
        f"b24app: вердикт — {ru} (уверенность {verdict.confidence:.2f}).",
        f"b24app: verdict — {en} (confidence {verdict.confidence:.2f}).",
    )
    if verdict.verdict == q.JUNK:
        return Outcome(values, message)
    manager = hand_off(ctx, verdict, answers, conf.get("handoff_user_id"))
    message += ctx.t(
        f" Лид передан менеджеру #{manager}.", f" The lead went to manager #{manager}."
    )
    return Outcome(values, message)


def hand_off(
    ctx: RobotContext, verdict: q.Verdict, answers: q.Answers, handoff_user_id: int | None
) -> int:
    """Set the lead's status and responsible (only what differs) and notify the manager."""
    client = ctx.services.bitrix(ctx.member_id)
    type_id, entity_id = ctx.entity
    item = (client.call("crm.item.get", {"entityTypeId": type_id, "id": entity_id}) or {})["item"]
    statuses = ctx.registration.get("statuses") or {}
    if type_id == 2:  # a deal: its pipeline's stage map
        from b24app.leads.pipelines import stage_map

        category = int(item.get("categoryId") or 0)
        statuses = stage_map(ctx.registration, ctx.settings, category)
    current_stage = str(item.get("stageId") or "")
    later = {statuses.get(k) for k in ("confirmed", "came", "no_show")} - {None}
    wanted_stage = statuses.get("qualified" if verdict.verdict == q.QUALIFIED else "new")
    manager = int(handoff_user_id or item.get("assignedById") or 0)
    changes: dict[str, Any] = {}
    # Never move a lead backwards from a booked/visited stage.
    if wanted_stage and current_stage != wanted_stage and current_stage not in later:
        changes["stageId"] = wanted_stage
    if manager and int(item.get("assignedById") or 0) != manager:
        changes["assignedById"] = manager
    if changes:
        client.call(
            "crm.item.update", {"entityTypeId": type_id, "id": entity_id, "fields": changes}
        )
    if manager:
        ru, en = VERDICT_TEXT[verdict.verdict]
        path = "lead" if type_id == 1 else "deal"
        link = f"[URL=/crm/{path}/details/{entity_id}/]#{entity_id}[/URL]"
        goal = answers.goal.strip()[:200] or "—"
        when = answers.desired_time.strip()[:100] or "—"
        client.call(
            "im.notify.system.add",
            {
                "USER_ID": manager,
                "MESSAGE": ctx.t(
                    f"Лид {link} передан вам: {ru} (уверенность {verdict.confidence:.0%}). "
                    f"Услуга: {goal}. Время: {when}.",
                    f"Lead {link} is yours: {en} (confidence {verdict.confidence:.0%}). "
                    f"Service: {goal}. Time: {when}.",
                ),
                "TAG": f"b24app|qualify|{ctx.lead_id}",
            },
        )
        handoff_seconds = (utc_now() - ctx.called_at).total_seconds()
        log.info("lead handed off to a manager in %.2f s", handoff_seconds)
    return manager


HANDLERS: dict[str, Callable[[RobotContext, dict[str, Any]], Outcome]] = {
    d.MARK_AI: mark_ai,
    d.SLA_START: sla_start,
    d.SLA_STOP: sla_stop,
    d.REMINDERS: reminders,
    d.QUALIFY: qualify,
    d.KPI_SNAPSHOT: kpi_snapshot,
}
