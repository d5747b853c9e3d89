"""Robot handlers: ``POST /robots/<code>``, called by Bitrix24 when an automation rule runs.

Parse the form (bracket keys) → validate the envelope → authenticate the portal → record the
call and enqueue its job → answer 200 at once. Properties are checked here too, but an invalid
property is still accepted (the caller is authentic): the job tells the workflow what is wrong
(see :mod:`b24app.robots.jobs`), because a 400 would leave the workflow waiting silently.
"""

from __future__ import annotations

import logging

from flask import Blueprint
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from b24app import logs
from b24app import metrics
from b24app.errors import ApiError
from b24app.robots import jobs
from b24app.robots.definitions import ROBOTS_BY_CODE
from b24app.robots.schemas import document_key
from b24app.robots.schemas import lead_id_of
from b24app.robots.schemas import load_properties
from b24app.robots.schemas import RobotCallSchema
from b24app.web import authenticate
from b24app.web import read_form
from b24app.web import services

log = logging.getLogger(__name__)

bp = Blueprint("robots", __name__)


@bp.post("/<code>")
def robot_call(code: str) -> ResponseReturnValue:
    """Accept one robot call; 200 with ``{"accepted": bool, "problems": {...}}``.

    :raise 400: no robot ``code`` (a 400 like any other bad input, not a 404: the URL is built
        by our own installer, so an unknown code is a forged or stale call), a malformed form or
        envelope, or a ``code`` field that differs from the URL.
    :raise 401/403: unknown portal / wrong ``application_token``.
    """
    if code not in ROBOTS_BY_CODE:
        raise ApiError(400, "Unknown robot.")
    payload = RobotCallSchema().load(read_form())
    if payload["code"] != code:
        raise ApiError(400, "The robot code in the payload does not match the URL.")
    auth = payload["auth"]
    portal = authenticate(auth["member_id"], auth["application_token"])
    document = payload["document_id"][2]
    lead_id = lead_id_of(payload["document_id"])
    if lead_id is None and len(payload["document_id"]) == 3:
        lead_id = document_key(payload["document_id"][2])  # a deal: -deal_id
    problems: dict[str, object] = {}
    if lead_id is None:
        problems["document_id"] = ["not_a_lead"]
    else:
        try:
            load_properties(code, payload["properties"])
        except ValidationError as exc:
            problems = exc.normalized_messages()
    with logs.bind(member_id=portal.member_id, lead_id=lead_id, robot=code):
        accepted = jobs.accept_call(
            services(),
            portal.id,
            portal.member_id,
            code,
            payload["event_token"],
            document,
            payload["properties"],
        )
        if not accepted:
            log.info("repeated robot call ignored")
        elif problems:
            log.info("robot call with invalid properties: %s", sorted(problems))
    metrics.EVENTS_IN.labels(event=f"robot:{code}").inc()
    return {"accepted": accepted, "problems": problems}
