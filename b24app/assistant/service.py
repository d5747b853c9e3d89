"""One turn of the assistant, end to end (called by the ``assistant`` queue's job).

Order, chosen for the 3 s answer target: typing first (one REST call), then thinking (rules,
optionally the model), then **one batch** that sends the answer as the bot with its keyboard
and writes what was learned to the CRM item; a hand-off adds a second batch (the summary for
the operator, ``imopenlines.bot.session.operator`` or a transfer to the line's queue, a
timeline comment) and starts the lead's first-reply SLA from that moment. The AI-lead tagging
runs after the answer, once per dialog, so it never delays it.

When the portal's bucket is empty, the answer (reply + CRM write) is not sent by its own job
but queued in the portal's outbox and sent together with the other chats' waiting answers in
one ``batch`` (:mod:`b24app.assistant.outbox`); with room in the bucket it goes at once, alone.

Per chat, turns run one at a time (a Redis lock); a turn is recorded once per message id, so a
repeated delivery sends nothing.

Trust (issue 19): the bot event is a claim. Before a turn changes anything, the chat is read
back with the app's token (:mod:`b24app.bitrix.chat_history`, one ``batch`` that also carries
the typing indicator in a chat the bot already talks in): only a message the chat's client
wrote is answered, with Bitrix24's text, author and CRM binding, and the answer goes to the
chat it was read from. A repeat of an answered message is recognised before any read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b24app import logs
from b24app.appointments.delivery import client_wrote
from b24app.assistant import booking
from b24app.assistant import bot as botapi
from b24app.assistant import claims
from b24app.assistant import holds
from b24app.assistant import outbox
from b24app.assistant import rate
from b24app.assistant.dialog import DialogState
from b24app.assistant.dialog import fmt_slot
from b24app.assistant.dialog import fmt_when
from b24app.assistant.dialog import hold_refused
from b24app.assistant.dialog import may_prebook
from b24app.assistant.dialog import Reply
from b24app.assistant.dialog import Script
from b24app.assistant.dialog import step
from b24app.assistant.handoff import finish_handoff
from b24app.assistant.handoff import hand_off
from b24app.assistant.handoff import HandoffPlan
from b24app.assistant.handoff import hold_first_reply
from b24app.assistant.handoff import plan_handoff
from b24app.assistant.handoff import session_handoff_call
from b24app.assistant.model import ModelUnderstander
from b24app.assistant.slots import horizon_days
from b24app.assistant.slots import offer_times
from b24app.assistant.slots import offered_since
from b24app.assistant.turns import answered
from b24app.assistant.turns import enqueue_tagging
from b24app.assistant.turns import Turn
from b24app.assistant.turns import waiting_before
from b24app.assistant.understanding import safety_vocabulary
from b24app.assistant.understanding import Service
from b24app.assistant.understanding import understand
from b24app.assistant.understanding import Understanding
from b24app.assistant.understanding import When
from b24app.bitrix.chat_history import Chat
from b24app.bitrix.chat_history import client_message
from b24app.bitrix.chat_history import parse_bindings
from b24app.bitrix.chat_history import read_chat
from b24app.bitrix.client import BatchResult
from b24app.bitrix.errors import BitrixError
from b24app.bitrix.errors import PortalUnavailable
from b24app.consent.contact import contact_of_chat
from b24app.consent.optout import confirmation_text
from b24app.consent.optout import opt_out
from b24app.context import Services
from b24app.leads.classify import ai_channel_of
from b24app.leads.journeys import find_journey
from b24app.robots.qualifier import ChatModel
from b24app.settings import bounded_services
from b24app.settings import load_settings
from b24app.sla.worktime import WorkCalendar
from b24app.storage.models import AssistantDialog
from b24app.storage.models import AssistantTurn
from b24app.storage.models import PortalStatus
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)

TYPING_HEADROOM = 25  # bucket slots kept for answers before typing is dropped


# --- small parsers ---------------------------------------------------------------------------


def parse_entity(entity_id: str) -> tuple[str, str]:
    """(connector, line id) from ``telegrambot|2|209607941|744``."""
    parts = (entity_id or "").split("|")
    return (parts[0] if parts else ""), (parts[1] if len(parts) > 1 else "")


def script_of(settings: dict[str, Any], lang: str) -> tuple[Script, dict[str, Any]]:
    a = settings.get("assistant") or {}
    services = [Service.from_settings(s) for s in bounded_services(a.get("services"))]
    script = Script(
        services=services,
        lang=lang,
        greeting=str(a.get("greeting") or ""),
        questions={k: v for k, v in (a.get("questions") or {}).items() if v},
        business_name=str((settings.get("reminders") or {}).get("business_name") or ""),
    )
    return script, a


# --- the turn --------------------------------------------------------------------------------


def _understander(services: Services, assistant: dict[str, Any]) -> ModelUnderstander | None:
    settings = services.settings
    if assistant.get("model") and settings.llm_api_key:
        chat = ChatModel.at(
            settings.llm_api_url,
            settings.llm_api_key,
            settings.llm_model,
            settings.assistant_llm_timeout,
            services.http_session(),  # the worker's: a warm connection, no handshake
        )
        return ModelUnderstander(chat)
    return None


def _find_dialog(session: Session, portal_id: int, chat_id: str) -> AssistantDialog | None:
    return session.scalar(
        select(AssistantDialog).where(
            AssistantDialog.portal_id == portal_id, AssistantDialog.chat_id == chat_id
        )
    )


def _load_dialog(session: Session, portal_id: int, turn: Turn) -> AssistantDialog:
    dialog = _find_dialog(session, portal_id, turn.chat_id)
    if dialog is not None:
        return dialog
    connector, line_id = parse_entity(turn.entity_id)
    crm = parse_bindings(turn.entity_data2)
    dialog = AssistantDialog(
        portal_id=portal_id,
        chat_id=turn.chat_id,
        dialog_id=turn.dialog_id,
        bot_id=turn.bot_id,
        line_id=line_id[:32],
        channel=connector[:64],
        client_user_id=turn.user_id or None,
        lead_id=crm.get("LEAD"),
        deal_id=crm.get("DEAL"),
        contact_id=crm.get("CONTACT"),
        state="new",
        slots={},
        turns=0,
    )
    try:
        with session.begin_nested():
            session.add(dialog)
    except IntegrityError:  # the lock makes this rare; a concurrent first turn won
        found = _find_dialog(session, portal_id, turn.chat_id)
        assert found is not None
        return found
    return dialog


def _crm_writes(
    dialog: AssistantDialog,
    before: DialogState,
    after: DialogState,
    reply: Reply,
    script: Script,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """What this turn learned, written to the CRM item of the chat (lead, else deal)."""
    # Every CRM write costs a REST request and brings back an update event (the app's intake
    # fetches the lead again: one more). So the item is written at the pre-booking and at the
    # confirmation (each write carries everything learned: service, time, contact) and with
    # the last answer before a hand-off; the turns in between are in our own store.
    if not ({"prebook", "confirm", "handoff"} & set(reply.actions)):
        return {}
    service = script.service(after.service)
    lines = [script.text("crm_head")]
    if service:
        lines.append(script.text("summary_service", service=service.title(script.lang)))
    if after.start:
        lines.append(script.text("summary_start", when=after.start.replace("T", " ")))
    elif after.when:
        lines.append(script.text("summary_when", when=fmt_when(after.when, script)))
    if after.phone:
        lines.append(script.text("summary_phone", phone=after.phone))
    comments = " ".join(lines)
    if dialog.lead_id:
        fields: dict[str, Any] = {"COMMENTS": comments}
        contact_moment = "prebook" in reply.actions or "handoff" in reply.actions
        if after.name and contact_moment:
            fields["NAME"] = after.name
        if after.phone and contact_moment:
            # PHONE is a multi-field: each write adds a value, so only at these moments
            fields["PHONE"] = [{"VALUE": after.phone, "VALUE_TYPE": "MOBILE"}]
        if service and service.price is not None:
            fields["OPPORTUNITY"] = service.price
        # the confirmed stage: b24app/appointments/outcomes.py, with the appointment
        return {"crm": ("crm.lead.update", {"id": dialog.lead_id, "fields": fields})}
    if dialog.deal_id:
        deal_fields: dict[str, Any] = {"comments": comments}
        if service and service.price is not None:
            deal_fields["opportunity"] = service.price
        return {
            "crm": (
                "crm.item.update",
                {"entityTypeId": 2, "id": dialog.deal_id, "fields": deal_fields},
            )
        }
    return {}


def _after_answer(
    portal: _Portal, client: Any, dialog: _Dialog, think: _Thought, client_name: str
) -> None:
    """The pre-booking (appointment, Online Booking), its release on going back, the
    confirmation; and the journey's appointment time."""
    services, member_id, dialog_pk = portal.services, portal.member_id, dialog.pk
    before, after, reply, script = dialog.before, think.reply.state, think.reply, think.script
    assistant, calendar = portal.assistant, portal.calendar
    if "prebook" in reply.actions and after.start:
        service = script.service(after.service)
        start, minutes = _prebook_span(after, script, calendar)
        booking.prebook(
            services, client, dialog_pk, start_utc=start, minutes=minutes,
            service_title=service.title(script.lang) if service else "",
            client_name=after.name or client_name, time_zone=str(calendar.time_zone),
            resource_id=assistant.get("booking_resource_id"),
        )  # fmt: skip
        claims.release(services.redis, member_id, dialog_pk)  # the row holds the time now
        holds.schedule_release(services, member_id, dialog_pk, holds.hold_minutes(assistant))
        with services.db() as session:
            row = session.get(AssistantDialog, dialog_pk)
            assert row is not None
            journey = find_journey(session, row.portal_id, lead_id=row.lead_id,
                                   deal_id=row.deal_id)  # fmt: skip
            if journey is not None:
                journey.booking_at = start
    elif before.start and not after.start and after.state != "handoff":
        booking.release(services, client, dialog_pk)
        claims.release(services.redis, member_id, dialog_pk)
        holds.cancel_release(services, member_id, dialog_pk)
    if "confirm" in reply.actions:
        booking.confirm(services, dialog_pk)
        holds.cancel_release(services, member_id, dialog_pk)


def _prebook_span(
    after: DialogState, script: Script, calendar: WorkCalendar
) -> tuple[dt.datetime, int]:
    """The chosen time as naive UTC, and the service's length in minutes."""
    assert after.start is not None
    service = script.service(after.service)
    local = dt.datetime.fromisoformat(after.start).replace(tzinfo=calendar.time_zone)
    return local.astimezone(dt.UTC).replace(tzinfo=None), service.duration if service else 60


@dataclass(frozen=True)
class _Portal:
    """The portal's side of a turn, read once per job: the same for every turn under the
    chat's lock."""

    services: Services
    member_id: str
    portal_id: int
    registration: dict[str, Any]
    script: Script
    assistant: dict[str, Any]
    calendar: WorkCalendar


@dataclass(frozen=True)
class _Dialog:
    """What a turn needs of its dialog row, read once under the chat's lock."""

    pk: int
    before: DialogState
    own_booking: int | None
    first_turn: bool
    client_user_id: int | None
    lead_id: int | None
    channel: str
    line_id: str
    pending_handoff: bool  # answered already, but its hand-off failed half-way


@dataclass(frozen=True)
class _Thought:
    """What the turn understood and decided, and how long that took."""

    understanding: Understanding
    reply: Reply
    script: Script  # the portal's, with this turn's last bookable day
    think_ms: int


Writes = dict[str, tuple[str, dict[str, Any]]]


def process_turn(services: Services, turn: Turn) -> str:
    """Answer one client message (or greet on join). Returns what happened, for the logs."""
    with services.db() as session:
        row = get_portal(session, turn.member_id)
        if row is None or row.status != PortalStatus.ACTIVE:
            return "portal_unavailable"
        portal_id, lang = row.id, (row.lang or "ru")
        registration = dict(row.registration or {})
        settings = load_settings(session, portal_id)
    script, assistant = script_of(settings, "en" if lang.startswith("en") else "ru")
    portal = _Portal(services, turn.member_id, portal_id, registration, script, assistant,
                     WorkCalendar.from_settings(settings))  # fmt: skip
    queued: list[bool] = []
    reads: dict[str, Chat] = {}  # the chat as read back from Bitrix24 under this lock
    with logs.bind(member_id=turn.member_id, chat_id=turn.chat_id):
        with claims.chat_lock(services.redis, turn.member_id, turn.chat_id):
            try:
                # The chat's earlier messages first, whichever job took the lock first.
                for earlier in waiting_before(services, turn):
                    try:
                        _process_locked(portal, earlier, queued, reads)
                    except PortalUnavailable:
                        raise
                    except Exception:
                        # its own job retries it; this message is not held hostage
                        log.exception("an earlier message of the chat failed")
                        continue
                    answered(services, earlier)
                outcome = _process_locked(portal, turn, queued, reads)
                answered(services, turn)
            except PortalUnavailable:
                return "portal_unavailable"
        if queued:
            # the answer waits in the portal's outbox: sent now with whatever else waits if
            # the bucket has room, else by a flush job queued behind the answers being
            # computed (outside the chat's lock: the chat's next turn can run meanwhile)
            try:
                outbox.send_or_schedule(services, turn.member_id)
            except PortalUnavailable:
                return "portal_unavailable"
        return outcome


def _process_locked(portal: _Portal, turn: Turn, queued: list[bool], reads: dict[str, Chat]) -> str:
    """The turn under its chat's lock, as a pipeline: admit (read back, dialog) → understand
    → decide → plan the writes → deliver → record. Appends True to ``queued`` when its answer
    was put in the portal's outbox (the caller sends it after releasing the lock).

    The event is only a hint: before anything changes, the message, its author and the chat's
    CRM binding are read back from Bitrix24 (:func:`verified_turn`); the turn goes on with what
    Bitrix24 said, and a message Bitrix24 does not show as the client's changes nothing."""
    services = portal.services
    client = services.bitrix(turn.member_id, interactive=True)
    admitted = _admit(portal, client, turn, reads)
    if isinstance(admitted, str):
        return admitted
    turn, typed, dialog = admitted
    stopped = _not_for_the_assistant(portal, client, turn, dialog)
    if stopped is not None:
        return stopped
    if dialog.first_turn and dialog.lead_id:
        hold_first_reply(services, portal.portal_id, dialog.lead_id)
    if not typed and _room_for_typing(client):
        _call_quietly(client, *_typing_call(turn))
    think = _think(portal, client, turn, dialog)
    writes = _plan_writes(portal, turn, dialog, think)
    if writes and not _sent_directly(portal, dialog, think.reply):
        if outbox.portal_waiting(services, turn.member_id) or not outbox.has_room(client):
            _queue_answer(portal, client, turn, dialog, think, writes)
            queued.append(True)
            _tag_first(portal, dialog)
            return think.reply.state.state
    answered_at, result, plan = _deliver(portal, client, turn, dialog, think, writes)
    _record(portal, client, turn, dialog, think, answered_at)
    if plan is not None and result is not None:
        # After the turn is stored: a refused session call retries the hand-off alone.
        finish_handoff(services, result, plan, dialog.pk, portal.portal_id)
    _tag_first(portal, dialog)
    return think.reply.state.state


def _admit(
    portal: _Portal, client: Any, turn: Turn, reads: dict[str, Chat]
) -> tuple[Turn, bool, _Dialog] | str:
    """The turn as Bitrix24 tells it, whether typing was shown, and its dialog; or why the
    turn stops here (``duplicate``, ``unverified``)."""
    with portal.services.db() as session:
        known = _find_dialog(session, portal.portal_id, turn.chat_id)
        if known is not None and turn.message_id and known.state != "handoff":
            if _turn_seen(session, known.id, turn.message_id):
                return "duplicate"  # answered already: nothing to read or change
        elif known is not None and not turn.message_id and known.turns:
            return "duplicate"  # greeted already
        # typing rides in the read's request, but only into a chat the bot already talks in
        # (the dialog's chat; a first event's chat is typed in once verified)
        early_typing = (
            known is not None
            and known.state != "handoff"
            and _served(portal.assistant, known.line_id)
        )
    checked = verified_turn(client, turn, reads, early_typing and _room_for_typing(client))
    if checked is None:
        log.warning("chat event not confirmed by Bitrix24: ignored")
        return "unverified"
    read = reads.get(turn.chat_id)
    turn, typed = checked
    _note_window(portal, read, turn.message_id)
    dialog = _open_dialog(portal, turn)
    if dialog is None:
        return "duplicate"
    return turn, typed, dialog


def _note_window(portal: _Portal, chat: Chat | None, message_id: int) -> None:
    """A client message Bitrix24 confirmed: its messenger's 24 h window reopens, as on the
    reminder's own routes (one rule: :func:`b24app.appointments.delivery.client_wrote`)."""
    message = client_message(chat, message_id) if chat is not None and message_id else None
    if chat is not None and message is not None:
        with portal.services.db() as session:
            client_wrote(session, portal.portal_id, chat, message.sent_at)


def _turn_seen(session: Session, dialog_pk: int, message_id: int) -> bool:
    return (
        session.scalar(
            select(AssistantTurn.id).where(
                AssistantTurn.dialog_id == dialog_pk, AssistantTurn.message_id == message_id
            )
        )
        is not None
    )


def _open_dialog(portal: _Portal, turn: Turn) -> _Dialog | None:
    """The verified turn's dialog (made on its first turn); None when the turn was answered
    already, unless only its hand-off failed half-way (then ``pending_handoff``)."""
    with portal.services.db() as session:
        dialog = _load_dialog(session, portal.portal_id, turn)
        pending_handoff = False
        if turn.message_id:
            if _turn_seen(session, dialog.id, turn.message_id):
                # answered already; only a hand-off that failed half-way is finished now
                pending_handoff = (
                    dialog.state == "handoff"
                    and dialog.operator_notified_at is None
                    and dialog.handoff_reason not in ("disabled", "rate_limited")
                )
                if not pending_handoff:
                    return None
        elif dialog.turns:
            return None  # greeted already
        return _Dialog(
            pk=dialog.id,
            before=DialogState.load(dialog.state, dialog.slots, dialog.handoff_reason),
            own_booking=dialog.booking_id,
            first_turn=dialog.turns == 0,
            client_user_id=dialog.client_user_id,
            lead_id=dialog.lead_id,
            channel=dialog.channel,
            line_id=dialog.line_id,
            pending_handoff=pending_handoff,
        )


def _not_for_the_assistant(portal: _Portal, client: Any, turn: Turn, dialog: _Dialog) -> str | None:
    """Why the assistant does not answer this turn (a hand-off to finish, a line it does not
    serve, a chat with the operators, a line over its rate), having done what that asks;
    None when it answers."""
    services, assistant, before = portal.services, portal.assistant, dialog.before
    if dialog.pending_handoff:
        hand_off(services, client, turn, dialog.pk, portal.portal_id, before, portal.script,
                 assistant)  # fmt: skip
        return "handoff_retried"
    if not _served(assistant, dialog.line_id):
        if before.state != "handoff":
            _silent_handoff(services, client, turn, dialog.pk, assistant)
        return "not_served"
    if before.state == "handoff":
        _store_turn(services, dialog.pk, turn, before, before, None, Reply("", before), 0, None)
        return "operator"
    if dialog.first_turn and not rate.admit_dialog(
        services.redis, turn.member_id, dialog.line_id, turn.chat_id, rate.per_hour(assistant)
    ):
        log.info("line %s: over its new dialogs per hour, the chat goes to the operators",
                 dialog.line_id)  # fmt: skip
        _silent_handoff(services, client, turn, dialog.pk, assistant, reason="rate_limited")
        return "rate_limited"
    return None


def _think(portal: _Portal, client: Any, turn: Turn, dialog: _Dialog) -> _Thought:
    """Understand the message, then decide the answer; timed for the KPIs."""
    think_start = time.monotonic()
    now = dt.datetime.now(portal.calendar.time_zone)
    last_day = now.date() + dt.timedelta(days=horizon_days(portal.assistant))
    script = dataclasses.replace(portal.script, last_day=last_day)
    understanding = _understand(portal, turn, dialog.before, script, now)
    if understanding.has("optout"):
        reply = _opted_out(portal, turn, dialog, script)
    else:
        reply = _decide(portal, client, turn, dialog, script, understanding, now)
    think_ms = int((time.monotonic() - think_start) * 1000)
    return _Thought(understanding, reply, script, think_ms)


def _opted_out(portal: _Portal, turn: Turn, dialog: _Dialog, script: Script) -> Reply:
    """«СТОП» to the assistant: recorded (b24app/consent/optout.py), confirmed once — a
    repeated one is not answered — and the dialog stays where it was (the client may still
    write to book: the answers are not messages of the app's own accord)."""
    chat_id = int(turn.chat_id) if turn.chat_id.isdigit() else None
    client = contact_of_chat(turn.entity_data2, chat_id or 0, turn.user_id or None)
    if chat_id is None:
        client = replace(client, chat_id=None)
    first = opt_out(portal.services, portal.portal_id, client, channel=dialog.channel,
                    text=turn.text)  # fmt: skip
    text = confirmation_text(script.lang) if first is not None else ""
    return Reply(text, dialog.before, actions=["optout"])


def _understand(
    portal: _Portal, turn: Turn, before: DialogState, script: Script, now: dt.datetime
) -> Understanding:
    """What the message says, read by the model when the portal has one, else by the rules."""
    assistant = portal.assistant
    choices = _offered_buttons(before, script)
    safety = safety_vocabulary(str(assistant.get("kind") or "salon"), assistant.get("safety_words"))
    model = _understander(portal.services, assistant)
    try:
        if model is not None:
            return model.understand(turn.text, now=now, services=script.services,
                                    expect=before.state, choices=choices,
                                    lang=script.lang, safety=safety)  # fmt: skip
        return understand(turn.text, now=now, services=script.services,
                          expect=before.state, choices=choices,
                          lang=script.lang, safety=safety)  # fmt: skip
    except (OverflowError, ValueError):
        # a date out of every range ("31.12.9999 после 22" plus a day): read as nothing
        # understood, answered like any unclear message instead of failing the job
        log.warning("message not understood: a value out of range", exc_info=True)
        return Understanding(text=turn.text)


def _decide(
    portal: _Portal,
    client: Any,
    turn: Turn,
    dialog: _Dialog,
    script: Script,
    understanding: Understanding,
    now: dt.datetime,
) -> Reply:
    """The dialog's step: the answer, the free times it offers, and for a tapped time the
    claim on it (or a refusal when the client holds a pre-booking in another chat)."""
    services, assistant, calendar = portal.services, portal.assistant, portal.calendar
    local_now = now.replace(tzinfo=None)

    def offer(when: When, duration: int) -> list[dt.datetime]:
        taking = claims.claimed(services.redis, turn.member_id, calendar.time_zone, dialog.pk)
        since = local_now
        if when.day and when.at:  # re-checking a tapped time: its lead counts from the offer
            tapped = dt.datetime.combine(when.day, when.at).isoformat(timespec="minutes")
            if tapped in dialog.before.offered:
                since = offered_since(local_now, dialog.before.offered_at)
        return offer_times(
            services, client, turn.member_id, portal.portal_id, calendar, when, duration,
            now=since, resource_id=int(assistant.get("booking_resource_id") or 0),
            step=int(assistant.get("slot_step_minutes") or 60), claimed=taking,
            exclude_dialog=dialog.pk, own_booking=dialog.own_booking, last_day=script.last_day,
        )  # fmt: skip

    # A tapped time: another chat may be taking the same time on another worker right now, so
    # the read of what is taken, the step's re-check and the claim go under the portal's slot
    # lock (other turns never wait for it).
    slot_lock = (
        claims.slot_lock(services.redis, turn.member_id)
        if may_prebook(dialog.before, understanding)
        else nullcontext()
    )
    with slot_lock:
        reply = step(dialog.before, understanding, script, offer)
        if "prebook" in reply.actions and reply.state.start:
            who = reply.state.phone, dialog.client_user_id
            if holds.held_elsewhere(services, turn.member_id, portal.portal_id, dialog.pk, *who,
                                    holds.hold_minutes(assistant)):  # fmt: skip
                reply = hold_refused(reply.state, script)
            else:
                start_utc, minutes = _prebook_span(reply.state, script, calendar)
                claims.claim(services.redis, turn.member_id, dialog.pk, start_utc, minutes,
                             holds.owner(*who))  # fmt: skip
    fresh = reply.state.offered and reply.state.offered != dialog.before.offered
    reply.state.offered_at = (
        local_now.isoformat(timespec="minutes") if fresh else dialog.before.offered_at
    )
    return reply


def _plan_writes(portal: _Portal, turn: Turn, dialog: _Dialog, think: _Thought) -> Writes:
    """The answer as the bot (with its keyboard) and what the turn learned for the CRM item."""
    reply = think.reply
    writes: Writes = {}
    if reply.text:
        fields: dict[str, Any] = {"message": reply.text}
        keyboard = botapi.keyboard(reply.buttons, turn.bot_id)
        if keyboard:
            fields["keyboard"] = keyboard
        writes["send"] = (
            "imbot.v2.Chat.Message.send",
            {"botId": turn.bot_id, "dialogId": turn.dialog_id, "fields": fields},
        )
    with portal.services.db() as session:
        current = session.get(AssistantDialog, dialog.pk)
        assert current is not None
        writes.update(_crm_writes(current, dialog.before, reply.state, reply, think.script))
    return writes


def _sent_directly(portal: _Portal, dialog: _Dialog, reply: Reply) -> bool:
    """Whether the answer must go in this turn's own request, never the outbox: something
    later in the turn reads a result back or must follow the answer in the chat (a
    pre-booking on a Booking resource needs booking.add's id, the delete of such a booking,
    a hand-off). Without a resource both are our own rows only."""
    before, after = dialog.before, reply.state
    resource_id = int(portal.assistant.get("booking_resource_id") or 0)
    return bool(
        ("prebook" in reply.actions and after.start and resource_id)
        or (before.start and not after.start and after.state != "handoff" and dialog.own_booking)
        or "handoff" in reply.actions
    )


def _queue_answer(
    portal: _Portal, client: Any, turn: Turn, dialog: _Dialog, think: _Thought, writes: Writes
) -> None:
    """Deliver through the outbox: the bucket is empty, or answers already wait for it (the
    sender's next request carries this one too, as soon as a slot frees: taking that slot for
    this answer alone would only make the others wait longer). The turn is recorded first,
    so a repeated delivery sends nothing."""
    _record(portal, client, turn, dialog, think, None)
    outbox.push(portal.services, turn.member_id, outbox.Entry(
        turn.chat_id, dialog.pk, turn.message_id, turn.received_at,
        {name: [method, params] for name, (method, params) in writes.items()},
    ))  # fmt: skip


def _deliver(
    portal: _Portal, client: Any, turn: Turn, dialog: _Dialog, think: _Thought, writes: Writes
) -> tuple[dt.datetime | None, BatchResult | None, HandoffPlan | None]:
    """Deliver in this turn's own ``batch``: (answered at, the batch's result, the hand-off
    plan). A hand-off rides in the same request, after the answer: on a busy portal it no
    longer waits for the bucket a second time."""
    services, reply = portal.services, think.reply
    plan = None
    if "handoff" in reply.actions:
        plan = plan_handoff(services, turn, dialog.pk, reply.state, think.script,
                            portal.assistant)  # fmt: skip
        if plan is not None:
            writes.update(plan.writes)
    if not writes:
        return None, None, plan
    if outbox.chat_waiting(services, turn.member_id, turn.chat_id):
        outbox.wait_for_chat(services, turn.member_id, turn.chat_id)
    result = client.batch(writes, halt=False)
    answered_at = utc_now()
    if result.errors:
        log.warning("assistant writes refused: %s", sorted(result.errors))
        sent = result.errors.get("send")
        if sent:
            raise BitrixError(
                str(sent.get("error") or "SEND_FAILED"),
                str(sent.get("error_description") or ""),
                method="imbot.v2.Chat.Message.send",
            )
    return answered_at, result, plan


def _record(
    portal: _Portal,
    client: Any,
    turn: Turn,
    dialog: _Dialog,
    think: _Thought,
    answered_at: dt.datetime | None,
) -> None:
    """The booking side of the answer, then the turn itself (its row, the dialog's state)."""
    _after_answer(portal, client, dialog, think, turn.user_name)
    _store_turn(portal.services, dialog.pk, turn, dialog.before, think.reply.state,
                think.understanding, think.reply, think.think_ms, answered_at)  # fmt: skip


def _served(assistant: dict[str, Any], line_id: str) -> bool:
    return bool(assistant.get("enabled")) and (
        not assistant.get("lines") or line_id in [str(x) for x in assistant["lines"]]
    )


def _typing_call(turn: Turn) -> tuple[str, dict[str, Any]]:
    return "imbot.v2.Chat.InputAction.notify", {
        "botId": turn.bot_id, "dialogId": turn.dialog_id, "actionType": "TYPING"
    }  # fmt: skip


def verified_turn(
    client: Any, turn: Turn, reads: dict[str, Chat], typing: bool
) -> tuple[Turn, bool] | None:
    """``turn`` rebuilt from what Bitrix24 says (:mod:`b24app.bitrix.chat_history`), and
    whether typing was shown; None when Bitrix24 does not confirm the event.

    One read per lock hold serves the chat's waiting messages too (the read holds them all).
    A message event must name a message the chat's client wrote; a join event a chat the bot
    is in. Text, author, CRM binding and the dialog answered come from the read, never from
    the event. ``userInChat`` may be empty (the docs allow it): then membership is not
    checked, the client's message is."""
    chat = reads.get(turn.chat_id)
    typed = False
    if chat is None or (turn.message_id and turn.message_id not in chat.messages):
        # into the chat being read, never the event's dialogId
        own = replace(turn, dialog_id=f"chat{int(turn.chat_id)}")
        also = {"typing": _typing_call(own)} if typing else None
        chat, result = read_chat(client, int(turn.chat_id), also)
        typed = also is not None and "typing" not in result.errors
        if chat is None:
            return None
        reads[turn.chat_id] = chat
    if chat.members and turn.bot_id not in chat.members:
        return None  # not a chat of this bot
    if turn.message_id:
        message = client_message(chat, turn.message_id)
        if message is None:
            return None
        author_id, author_name, text = message.author_id, message.author_name, message.text
    else:
        author_id, author_name = next(iter(chat.clients.items()), (0, ""))
        text = ""
    verified = replace(turn, chat_id=str(chat.id), dialog_id=chat.dialog_id, text=text,
                       user_id=author_id, user_name=author_name, entity_id=chat.entity_id,
                       entity_data2=chat.entity_data2)  # fmt: skip
    return verified, typed


def _tag_first(portal: _Portal, dialog: _Dialog) -> None:
    if dialog.first_turn and dialog.lead_id:
        # background work, off this queue: the tag must not hold the chat's next answer
        channel = ai_channel_of(f"{dialog.line_id}|{dialog.channel.upper()}")
        enqueue_tagging(portal.services, portal.portal_id, dialog.lead_id, channel)


def _offered_buttons(state: DialogState, script: Script) -> list[str]:
    if state.state == "slot":
        return [fmt_slot(dt.datetime.fromisoformat(o), script.lang) for o in state.offered]
    if state.state == "confirm":
        return [script.text("btn_yes"), script.text("btn_change")]
    return []


def _store_turn(
    services: Services,
    dialog_pk: int,
    turn: Turn,
    before: DialogState,
    after: DialogState,
    understanding: Understanding | None,
    reply: Reply,
    think_ms: int,
    answered_at: dt.datetime | None,
) -> None:
    received = dt.datetime.fromtimestamp(turn.received_at, dt.UTC).replace(tzinfo=None)
    total_ms = int((answered_at - received).total_seconds() * 1000) if answered_at else 0
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        session.add(
            AssistantTurn(
                dialog_id=dialog_pk,
                message_id=turn.message_id,
                state_before=before.state,
                state_after=after.state,
                understood=understanding.as_dict() if understanding else {},
                confidence=round(understanding.confidence, 2) if understanding else 0,
                source=understanding.source if understanding else "none",
                reply=reply.text,
                actions=list(reply.actions),
                received_at=received,
                answered_at=answered_at,
                think_ms=think_ms,
                total_ms=max(total_ms, 0),
            )
        )
        dialog.state = after.state
        dialog.slots = after.slots()
        dialog.handoff_reason = after.handoff_reason
        dialog.turns = (dialog.turns or 0) + 1


def _room_for_typing(client: Any) -> bool:
    """Typing costs one REST request of the portal's budget: under pressure (the bucket nearly
    full) it is skipped, so the answers themselves are not delayed by indicators."""
    try:
        return float(client.bucket.level()) <= client.bucket.burst - TYPING_HEADROOM
    except Exception:  # diagnostics only: when unsure, show typing
        return True


def _call_quietly(client: Any, method: str, params: dict[str, Any]) -> None:
    """A call whose failure must not stop the answer (typing)."""
    try:
        client.call(method, params)
    except BitrixError as exc:
        log.info("%s failed: %s", method, exc)


def _silent_handoff(
    services: Services,
    client: Any,
    turn: Turn,
    dialog_pk: int,
    assistant: dict[str, Any],
    reason: str = "disabled",
) -> None:
    """The assistant is off (or not for this line, or the line is over its rate of new
    dialogs): the chat goes straight to the operators."""
    method, params = session_handoff_call(turn.chat_id, assistant)
    _call_quietly(client, method, params)
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        dialog.state = "handoff"
        dialog.handoff_reason = reason
        dialog.handoff_at = dialog.operator_notified_at = utc_now()


def dialogs_of(session: Session, portal_id: int) -> Sequence[AssistantDialog]:
    return session.scalars(
        select(AssistantDialog).where(AssistantDialog.portal_id == portal_id)
    ).all()
