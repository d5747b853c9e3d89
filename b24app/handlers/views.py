"""Event handlers: ``POST /handlers/events``, where Bitrix24 delivers the events bound at
install (lead added/updated/deleted, activity added).

Parse the form → validate the envelope → authenticate the portal → enqueue one job on the
``events`` queue under a deterministic id → answer 200 at once. Bitrix24 never re-sends an
event (a failed delivery is only recorded) and delays events to handlers that answer slowly,
so nothing here calls Bitrix24 or touches more than the portal row.
"""

from __future__ import annotations

import logging

from flask import Blueprint
from flask.typing import ResponseReturnValue

from b24app import logs
from b24app import metrics
from b24app.errors import ApiError
from b24app.handlers import jobs
from b24app.handlers.client_schemas import BookingEventSchema
from b24app.handlers.client_schemas import OpenLineEventSchema
from b24app.handlers.client_schemas import TaskEventSchema
from b24app.handlers.schemas import EventSchema
from b24app.web import authenticate
from b24app.web import read_form
from b24app.web import services

log = logging.getLogger(__name__)

bp = Blueprint("handlers", __name__)


@bp.post("/events")
def event() -> ResponseReturnValue:
    """Accept one event delivery; 200 ``{"status": "queued" | "duplicate"}``.

    :raise 400: a malformed form, an unknown event, a missing or non-numeric entity id.
    :raise 401: unknown portal. :raise 403: wrong ``application_token``.
    :raise 413: the body is too large.
    """
    payload = EventSchema().load(read_form())
    auth = payload["auth"]
    portal = authenticate(auth["member_id"], auth["application_token"])
    name = payload["event"]
    entity_id = payload["data"]["FIELDS"]["ID"]
    with logs.bind(member_id=portal.member_id, event=name, entity_id=entity_id):
        queued = jobs.enqueue_event(services(), portal.member_id, name, entity_id, payload["ts"])
        if not queued:
            log.info("repeated event delivery ignored")
    metrics.EVENTS_IN.labels(event=name).inc()
    return {"status": "queued" if queued else "duplicate"}


@bp.post("/booking")
def booking_event() -> ResponseReturnValue:
    """``ONBOOKINGADD`` / ``UPDATE`` / ``DELETE`` (``data[ID]`` only): queue the booking job.

    :raise 400: malformed envelope. :raise 403: unknown portal or wrong token.
    """
    payload = BookingEventSchema().load(read_form())
    auth = payload["auth"]
    portal = authenticate(auth["member_id"], auth["application_token"])
    name, booking_id = payload["event"], payload["data"]["ID"]
    with logs.bind(member_id=portal.member_id, event=name, entity_id=booking_id):
        queued = jobs.enqueue_event(services(), portal.member_id, name, booking_id, payload["ts"])
    metrics.EVENTS_IN.labels(event=name).inc()
    return {"status": "queued" if queued else "duplicate"}


@bp.post("/openlines")
def openline_event() -> ResponseReturnValue:
    """``ONOPENLINEMESSAGEADD``: a client's message is queued as a possible answer to a
    reminder; operators', bots' and system messages are acknowledged and ignored. The event
    is a claim: the job reads the message back from Bitrix24 before it counts.

    :raise 400: malformed envelope or message. :raise 403: unknown portal or wrong token.
    """
    from b24app.appointments.replies import enqueue_reply
    from b24app.appointments.replies import parse_message

    payload = OpenLineEventSchema().load(read_form())
    auth = payload["auth"]
    items = payload["data"].get("DATA")
    first = items[0] if isinstance(items, list) and items else (
        items.get("0") if isinstance(items, dict) else None
    )  # fmt: skip
    if not isinstance(first, dict) or not isinstance(first.get("message"), dict):
        raise ApiError(400, "data[DATA][0][message] is required")
    portal = authenticate(auth["member_id"], auth["application_token"])
    try:
        message = parse_message(payload["data"])
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    metrics.EVENTS_IN.labels(event=payload["event"]).inc()
    if message is None:
        return {"status": "ignored"}
    queued = enqueue_reply(services(), portal.member_id, message)
    return {"status": "queued" if queued else "duplicate"}


@bp.post("/tasks")
def task_event() -> ResponseReturnValue:
    """``ONTASKUPDATE`` (the task's id only): queued; the job reads the task back when it is
    one of the app's outcome questions (b24app/appointments/question_task.py).

    :raise 400: malformed envelope. :raise 403: unknown portal or wrong token.
    """
    from b24app.appointments.question import enqueue_task_update

    payload = TaskEventSchema().load(read_form())
    auth = payload["auth"]
    portal = authenticate(auth["member_id"], auth["application_token"])
    task_id = payload["data"]["FIELDS_AFTER"]["ID"]
    queued = enqueue_task_update(services(), portal.member_id, task_id, payload["ts"])
    metrics.EVENTS_IN.labels(event=payload["event"]).inc()
    return {"status": "queued" if queued else "duplicate"}
