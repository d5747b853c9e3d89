"""A reminder's chat step under the messengers' rules, and what became of what it sent.

Before writing into the client's chat the app decides whether free text can reach the client
now (:func:`b24app.reach.channels.free_text_reach`: WhatsApp, Instagram and Facebook 24 h after
the client's last message, Telegram never first, VK not after error 901). What it knows of a
chat — its connector, when its client last wrote, a connector's refusal — is a
:class:`~b24app.storage.models.ClientChat` row, written from the verified client messages
(:func:`client_wrote`, called by the reply route) and from every history read a send makes.
When the stored time says "outside the window", the chat's history is read once more before
giving up (the message events may not reach the app at all: ``docs/appointments.md``).

Delivery, not acceptance: an attempt is ``accepted`` when ``imopenlines.crm.message.add``
answers; for the connectors whose "not delivered" comes back later
(:data:`~b24app.reach.channels.LATE_FAILURE_KINDS`) a check at :func:`check_due` reads the
chat's history back: the connector's mark makes it ``delivered`` or ``failed`` (the reminder
then falls through to the next channel), a client message after it ``read``; no mark by then
is ``unknown`` ("accepted, delivery unknown") and stays so — sending the same text again by
SMS when the platform simply does not show marks would be a duplicate for the client.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from b24app.bitrix.chat_history import Chat
from b24app.bitrix.chat_history import crm_target
from b24app.bitrix.chat_history import history_command
from b24app.bitrix.chat_history import last_client_message_at
from b24app.bitrix.chat_history import parse_history
from b24app.bitrix.client import BatchResult
from b24app.bitrix.client import BitrixClient
from b24app.reach import Delivery
from b24app.reach.channels import connector_kind
from b24app.reach.channels import connector_of
from b24app.reach.channels import free_text_reach
from b24app.reach.channels import LATE_FAILURE_KINDS
from b24app.reach.chat import find_chat
from b24app.reach.chat import found_in
from b24app.reach.chat import FoundChat
from b24app.reach.chat import lookup_commands
from b24app.reach.chat import post
from b24app.reach.chat import read_known
from b24app.storage.models import ClientChat
from b24app.storage.models import ReminderAttempt

# Policy minutes after the send when a late "not delivered" is looked for.
CHECK_MINUTES = 10
# One check reads, in the same batch, the chats of up to this many other sends of the portal
# still waiting for theirs: a busy portal pays a fraction of a request per check.
CHECK_BATCH = 25
# Attempt states (ReminderAttempt.state); "delivered" and "read" count as delivered.
ACCEPTED, DELIVERED, READ, FAILED, UNKNOWN = "accepted", "delivered", "read", "failed", "unknown"
REACHED = (DELIVERED, READ)


def chat_facts(
    session: Session, portal_id: int, chat_id: int | None, targets: list[tuple[str, int]]
) -> dict[str, Any] | None:
    """What the app knows of chat ``chat_id`` (for the send's snapshot) — with no chat yet,
    of the chat last seen on the first of ``targets`` that has one (the booking's read found
    it: :func:`booking_chat_commands`) — or None."""
    if chat_id:
        where = ClientChat.chat_id == chat_id
    elif targets:
        where = ClientChat.target.in_([f"{kind}:{item}" for kind, item in targets])
    else:
        return None
    rows = session.scalars(
        select(ClientChat).where(ClientChat.portal_id == portal_id, where)
        .order_by(ClientChat.chat_id.desc())
    ).all()  # fmt: skip
    order = {f"{kind}:{item}": i for i, (kind, item) in enumerate(targets)}
    row = min(rows, key=lambda r: order.get(r.target, len(order)), default=None)
    if row is None:
        return None
    return {"chat_id": row.chat_id, "connector": row.connector, "refused": row.refused,
            "last_inbound_at": row.last_inbound_at, "target": row.target}  # fmt: skip


def remember_chat(session: Session, portal_id: int, seen: dict[str, Any]) -> None:
    """Upsert what a send learned of a chat (``chat_id``, ``connector``, ``last_inbound_at``,
    ``refused``); a later client message time never goes back."""
    row = session.scalar(
        select(ClientChat).where(
            ClientChat.portal_id == portal_id, ClientChat.chat_id == int(seen["chat_id"])
        )
    )
    if row is None:
        row = ClientChat(portal_id=portal_id, chat_id=int(seen["chat_id"]), connector="",
                         refused="")  # fmt: skip
        session.add(row)
    if seen.get("connector"):
        row.connector = str(seen["connector"])[:32]
    if seen.get("target"):
        row.target = str(seen["target"])[:32]
    inbound = seen.get("last_inbound_at")
    if inbound is not None and (row.last_inbound_at is None or inbound > row.last_inbound_at):
        row.last_inbound_at = inbound
        row.refused = ""  # the client wrote: a connector's earlier refusal is over
    if seen.get("refused"):
        row.refused = str(seen["refused"])[:32]


BOOKING_CHAT = "client_"  # the prefix of the chat commands in the booking's batch
_DEAL_LINK = "$result[links][externalData][0][value]"
_FIRST_CLIENT = "$result[clients][bookingClient][0][id]"


def booking_chat_commands() -> dict[str, tuple[str, dict[str, Any]]]:
    """The client's chat, read in the booking's own ``batch`` (chained on its first deal link
    and first client, as ``b24app/appointments/names.py`` reads the name): the first reminder
    then knows the chat's messenger and the client's last message without a request of its
    own (:func:`note_booking_chat`)."""
    return lookup_commands([("deal", _DEAL_LINK), ("contact", _FIRST_CLIENT)], BOOKING_CHAT)


def note_booking_chat(
    session: Session, portal_id: int, result: BatchResult, clients: Any, external: Any,
    deal_id: int | None, contact_id: int | None,
) -> None:  # fmt: skip
    """Remember the chat :func:`booking_chat_commands` found — only where the chained id was
    the booking's deal or contact (a company listed first is not a contact)."""
    link: dict[str, Any] = next(iter((external or {}).get("externalData") or []), {})
    first: dict[str, Any] = next(iter((clients or {}).get("bookingClient") or []), {})
    kind = first.get("type") or {}
    deal_ok = bool(deal_id) and str(link.get("moduleId")) == "crm" and str(
        link.get("entityTypeId")) == "DEAL" and str(link.get("value")) == str(deal_id)  # fmt: skip
    contact_ok = bool(contact_id) and str(kind.get("code")).upper() == "CONTACT" and str(
        kind.get("module")) == "crm" and str(first.get("id")) == str(contact_id)  # fmt: skip
    targets = [("deal", int(deal_id or 0)) if deal_ok else None,
               ("contact", int(contact_id or 0)) if contact_ok else None]  # fmt: skip
    note_found_chat(session, portal_id, result, targets, BOOKING_CHAT)


def imported_chat_commands(
    key: str, deal_id: int | None, contact_id: int | None
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The chat look-up of an imported booking whose deal and contact are already read (the
    install's scan, ``b24app/appointments/booking.py``): :func:`booking_chat_commands` with
    the ids themselves, keyed by ``key``; read back by :func:`note_imported_chat`."""
    return lookup_commands(list(_import_targets(deal_id, contact_id)), f"{BOOKING_CHAT}{key}_")


def note_imported_chat(
    session: Session, portal_id: int, result: BatchResult, key: str, deal_id: int | None,
    contact_id: int | None,
) -> None:  # fmt: skip
    """Remember the chat :func:`imported_chat_commands` found."""
    targets: list[tuple[str, int] | None] = list(_import_targets(deal_id, contact_id))
    note_found_chat(session, portal_id, result, targets, f"{BOOKING_CHAT}{key}_")


def _import_targets(deal_id: int | None, contact_id: int | None) -> list[tuple[str, int]]:
    return [(kind, int(item)) for kind, item in (("deal", deal_id), ("contact", contact_id))
            if item]  # fmt: skip


def note_found_chat(
    session: Session, portal_id: int, result: BatchResult, targets: list[tuple[str, int] | None],
    prefix: str,
) -> None:  # fmt: skip
    """Remember the first target's chat in the answers to ``lookup_commands(…, prefix)``."""
    found = found_in(result, targets, prefix)
    if found is not None:
        remember_chat(session, portal_id, _seen_found(found))


def client_wrote(session: Session, portal_id: int, chat: Chat, sent_at: dt.datetime | None) -> None:
    """A verified client message of ``chat``: the window reopens, and the reminders sent into
    the chat before it were read."""
    at = sent_at or last_client_message_at(chat)
    target = crm_target(chat.entity_data2)  # a reminder about that item finds the chat
    remember_chat(session, portal_id, {"chat_id": chat.id, "connector": connector_of(
        chat.entity_id), "last_inbound_at": at,
        "target": f"{target[0]}:{target[1]}" if target else ""})  # fmt: skip
    if at is None:
        return
    session.execute(
        update(ReminderAttempt)
        .where(
            ReminderAttempt.portal_id == portal_id,
            ReminderAttempt.channel == "chat",
            ReminderAttempt.detail == f"chat {chat.id}",
            ReminderAttempt.state.in_((ACCEPTED, DELIVERED, UNKNOWN)),
            # Bitrix24's message dates are whole seconds: a send in that second came before
            ReminderAttempt.attempted_at < at + dt.timedelta(seconds=1),
        )
        .values(state=READ)
        .execution_options(synchronize_session=False)
    )


def _seen(
    chat_id: int, connector: str, history: Chat | None, target: tuple[str, int] | None = None
) -> dict[str, Any]:
    inbound = last_client_message_at(history) if history is not None else None
    return {"chat_id": chat_id, "connector": connector, "last_inbound_at": inbound,
            "target": f"{target[0]}:{target[1]}" if target else ""}  # fmt: skip


def _known_target(facts: dict[str, Any], targets: list[tuple[str, int]]) -> tuple[str, int]:
    """The item the chat was found on, when still one of the appointment's; else the first."""
    kind, _, item = str(facts.get("target") or "").partition(":")
    if item.isdigit() and (kind, int(item)) in targets:
        return kind, int(item)
    return targets[0]


def chat_step(
    client: BitrixClient, snap: dict[str, Any], targets: list[tuple[str, int]], sender: int,
    text: str, now: dt.datetime,
) -> tuple[Delivery, dict[str, Any] | None]:  # fmt: skip
    """Send ``text`` into the client's chat if its messenger lets it reach the client now;
    returns the delivery (``error`` = the rule that stopped it) and what was learned of the
    chat (for :func:`remember_chat`)."""
    facts = snap.get("chat_facts")
    if facts and facts.get("connector") and targets:
        kind = connector_kind(facts["connector"])
        reach = free_text_reach(kind, facts["last_inbound_at"], now, facts["refused"])
        seen: dict[str, Any] | None = None
        if not reach.ok and reach.reason.startswith("window"):
            history = read_known(client, int(facts["chat_id"]))  # perhaps the client wrote
            seen = _seen(int(facts["chat_id"]), facts["connector"], history)
            latest = max((t for t in (seen["last_inbound_at"], facts["last_inbound_at"]) if t),
                         default=None)  # fmt: skip
            reach = free_text_reach(kind, latest, now, facts["refused"])
        if not reach.ok:
            return Delivery(False, error=reach.reason, chat_id=int(facts["chat_id"])), seen
        target = _known_target(facts, targets)
        # a chat only the booking's read saw: the sender joins in the send's own request
        member = snap.get("chat_id") == facts["chat_id"]
        sent = post(client, target, sender, int(facts["chat_id"]), text, member=member)
        if sent.ok:
            return sent, seen
    found = find_chat(client, targets)
    if isinstance(found, Delivery):
        return found, None
    return _send_found(client, found, sender, text, now)


def _seen_found(found: FoundChat) -> dict[str, Any]:
    history = found.history
    connector = found.connector or (connector_of(history.entity_id) if history else "")
    return _seen(found.chat_id, connector, history, found.target)


def _send_found(
    client: BitrixClient, found: FoundChat, sender: int, text: str, now: dt.datetime
) -> tuple[Delivery, dict[str, Any]]:
    seen = _seen_found(found)
    connector = seen["connector"]
    reach = free_text_reach(connector_kind(connector), seen["last_inbound_at"], now)
    if not reach.ok:
        return Delivery(False, error=reach.reason, chat_id=found.chat_id), seen
    member = found.history is not None and sender in found.history.members
    return post(client, found.target, sender, found.chat_id, text, member=member), seen


def needs_check(seen: dict[str, Any] | None, facts: dict[str, Any] | None) -> bool:
    """Whether a send into this chat is looked at again (its connector fails late)."""
    connector = (seen or {}).get("connector") or (facts or {}).get("connector") or ""
    return connector_kind(connector) in LATE_FAILURE_KINDS


Check = tuple[int, int, int]  # attempt id, chat id, message id


def waiting_checks(session: Session, portal_id: int, exclude: int) -> list[Check]:
    """Other chat sends of the portal still ``accepted`` (their checks not yet run)."""
    rows = session.execute(
        select(ReminderAttempt.id, ReminderAttempt.detail, ReminderAttempt.message_id)
        .where(
            ReminderAttempt.portal_id == portal_id,
            ReminderAttempt.state == ACCEPTED,
            ReminderAttempt.channel == "chat",
            ReminderAttempt.message_id.is_not(None),
            ReminderAttempt.id != exclude,
        )
        .order_by(ReminderAttempt.id)
        .limit(CHECK_BATCH)
    ).all()
    found = []
    for attempt_id, detail, message_id in rows:
        chat = str(detail or "").removeprefix("chat ").strip()
        if chat.isdigit() and message_id is not None:
            found.append((int(attempt_id), int(chat), int(message_id)))
    return found


def note_marks(session: Session, portal_id: int, chat: Chat) -> None:
    """The marks a read of ``chat`` made for another reason (the reply watch's) shows on the
    sends into it still ``accepted``: their checks then need no read of their own."""
    rows = session.execute(
        select(ReminderAttempt.id, ReminderAttempt.message_id).where(
            ReminderAttempt.portal_id == portal_id,
            ReminderAttempt.channel == "chat",
            ReminderAttempt.detail == f"chat {chat.id}",
            ReminderAttempt.state == ACCEPTED,
            ReminderAttempt.message_id.is_not(None),
        )
    ).all()
    for attempt_id, message_id in rows:
        state, reason = mark_of(chat, int(message_id or 0))
        if state:
            record_mark(session, attempt_id, state, reason)


def record_mark(session: Session, attempt_id: int, state: str, reason: str) -> None:
    """An attempt's state as a check or a read found it (``reason`` when it failed)."""
    marked = {"state": state, **({"error": reason[:255]} if reason else {})}
    session.execute(update(ReminderAttempt).where(ReminderAttempt.id == attempt_id)
                    .values(**marked).execution_options(synchronize_session=False))  # fmt: skip


def read_marks(client: BitrixClient, checks: list[Check]) -> dict[int, tuple[str, str]]:
    """Attempt id → (state, reason) by the chats' histories, ONE ``batch`` for all; a chat not
    shown gives no mark. Limits and network errors are raised (the job retries)."""
    chats = sorted({chat_id for _, chat_id, _ in checks})
    result = client.batch({f"h{c}": history_command(c) for c in chats}, halt=False)
    histories = {c: parse_history(result.results.get(f"h{c}"), c) for c in chats}
    return {attempt: mark_of(histories[chat], message) for attempt, chat, message in checks}


def mark_of(history: Chat | None, message_id: int) -> tuple[str, str]:
    """``(state, reason)`` of a sent message by the chat's history: failed / delivered /
    read (the client wrote after it) / "" (no mark)."""
    if history is None:
        return "", ""
    message = history.messages.get(int(message_id))
    if message is None:
        return "", ""
    if message.delivery == "failed":
        return FAILED, message.error or "undelivered"
    later = [m for m in history.messages.values()
             if m.sender_id in history.clients and m.id > message.id]  # fmt: skip
    if later:
        return READ, ""
    if message.delivery == "delivered":
        return DELIVERED, ""
    return "", ""
