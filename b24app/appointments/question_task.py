"""The outcome question as a Bitrix24 task (``appointments.outcome.ask = task``): made, read
back, and closed once the outcome is known (issue 23).

**Made** (:func:`create_task`): ``tasks.task.add`` for the asked user, bound to the deal or
lead, and three checklist items — «Пришёл(ла)», «Не пришёл(ла)», «Перенесли»
(``task.checklistitem.add``) — chained in one ``batch``. The task and its items' ids go into
the question timer's payload (``task_id``, ``task_items``: item id → outcome); a Redis key per
task lets the ``ONTASKUPDATE`` job tell the app's tasks from the portal's others without a
database read (:func:`question_timer`).

**Read back** (:func:`read_answer`): ``ONTASKUPDATE`` carries only the task's id, and an event
is a claim, so the task's checklist is read with the app's token
(``task.checklistitem.getlist``). Assumed where the docs are silent on what a completed task
"says": the answer is the one of the app's three items that is ticked — exactly one; none or
several ticked tells nothing, and the question stays open (the administrator's follow-up
still comes). A ticked item answers whether or not the task was completed (and an item ticked
after completing it too, while the outcome is unknown); the comments are not read (``task.commentitem.getlist`` does not work in the new task card, its docs say).

**Closed** (:func:`close_tasks`): once the outcome is recorded by any route (this task, a
button, a stage moved by hand, the administrator), every open question task of the
appointment is completed with ``tasks.task.complete`` and marked ``task_closed`` in its
timer's payload (once: a deleted task, or one the app may not complete, is marked too).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from b24app.assistant.bot import int_id
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import BitrixError
from b24app.context import Services
from b24app.i18n import translate
from b24app.reach import is_transient
from b24app.storage.models import Appointment
from b24app.storage.models import Portal
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import VisitOutcome

log = logging.getLogger(__name__)

ITEMS = ((VisitOutcome.CAME, "outcome.task_came"), (VisitOutcome.NO_SHOW, "outcome.task_no_show"),
         (VisitOutcome.MOVED, "outcome.moved"))  # fmt: skip
KEEP_SECONDS = 30 * 86400  # a question task answered later than this is not read
COMPLETED = ("4", "5")  # tasks' statuses: supposedly completed, completed


def _task_key(member_id: str, task_id: int) -> str:
    return f"b24app:outcome-task:{member_id}:{task_id}"


def create_task(
    services: Services, client: BitrixClient, snap: dict[str, Any], text: str, timer_id: int
) -> dict[str, Any]:
    """Make the question task with its checklist; returns what the timer's payload keeps."""
    lang, crm = snap["lang"], (
        [f"D_{snap['deal_id']}"] if snap["deal_id"] else
        [f"L_{snap['lead_id']}"] if snap["lead_id"] else [])  # fmt: skip
    commands: dict[str, tuple[str, dict[str, Any]]] = {"task": ("tasks.task.add", {"fields": {
        "TITLE": text, "DESCRIPTION": translate(lang, "outcome.task_body"),
        "RESPONSIBLE_ID": int(snap["user_id"]), "UF_CRM_TASK": crm}})}  # fmt: skip
    for outcome, key in ITEMS:
        commands[outcome] = ("task.checklistitem.add", {
            "TASKID": "$result[task][task][id]", "FIELDS": {"TITLE": translate(lang, key)}})  # fmt: skip
    answer = client.batch(commands, halt=True)
    error = answer.error("task")
    if error is not None:
        raise error
    task_id = int_id((answer.results.get("task") or {}).get("task", {}).get("id")) or 0
    items = {str(int_id(answer.results.get(o))): o for o, _ in ITEMS if answer.results.get(o)}
    services.redis.set(_task_key(snap["member_id"], task_id), timer_id, ex=KEEP_SECONDS)
    return {"task_id": task_id, "task_items": items}


def question_timer(services: Services, member_id: str, task_id: int) -> int | None:
    """The id of the question timer that made task ``task_id``, None for any other task."""
    raw = services.redis.get(_task_key(member_id, task_id))
    return int(raw) if raw is not None else None


def read_answer(
    client: BitrixClient, task_id: int, items: dict[str, str]
) -> tuple[tuple[str, int] | None, bool]:
    """What the task says, read back in one ``batch``: ((outcome, the user who ticked it)
    when exactly one of the app's items is ticked, else None; whether it is completed)."""
    answer = client.batch({
        "task": ("tasks.task.get", {"taskId": task_id, "select": ["ID", "STATUS"]}),
        "items": ("task.checklistitem.getlist", {"TASKID": task_id}),
    })  # fmt: skip
    error = answer.error("items") or answer.error("task")
    if error is not None:
        raise error
    task = (answer.results.get("task") or {}).get("task") or {}
    rows = answer.results.get("items") or []
    ticked = [(items[str(r.get("ID"))], int_id(r.get("TOGGLED_BY")) or 0)
              for r in rows if isinstance(r, dict) and str(r.get("ID")) in items
              and str(r.get("IS_COMPLETE")).upper() == "Y"]  # fmt: skip
    return (ticked[0] if len(ticked) == 1 else None), str(task.get("status")) in COMPLETED


def close_tasks(services: Services, appointment_id: int, policy: str) -> int:
    """Complete the appointment's open question tasks (timers of ``policy``) once its outcome
    is known; returns how many were closed now."""
    with services.db() as session:
        appt = session.get(Appointment, appointment_id)
        if appt is None or appt.outcome is None:
            return 0
        portal = session.get(Portal, appt.portal_id)
        open_tasks = [(t.id, int((t.payload or {})["task_id"])) for t in session.scalars(
            select(Timer).where(Timer.portal_id == appt.portal_id, Timer.policy == policy,
                                Timer.level.like(f"%@{appointment_id}"),
                                Timer.state == TimerState.FIRED))
            if (t.payload or {}).get("task_id") and not (t.payload or {}).get("task_closed")]  # fmt: skip
        member_id = portal.member_id if portal is not None else ""
    closed = 0
    for timer_id, task_id in open_tasks:
        try:
            services.bitrix(member_id).call("tasks.task.complete", {"taskId": task_id})
            closed += 1
        except BitrixError as exc:
            if is_transient(exc):
                raise
            log.info("question task not completed (%s): left to the person", type(exc).__name__)
        mark_closed(services, timer_id)
    return closed


def mark_closed(services: Services, timer_id: int) -> None:
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is not None:
            timer.payload = {**(timer.payload or {}), "task_closed": True}
            flag_modified(timer, "payload")
