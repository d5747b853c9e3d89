"""Tag a lead as an AI-lead in the CRM, once.

Tagging writes the app's lead user field (``Portal.registration["lead_field"]``, created at
install) with ``AI-lead · <channel>`` and adds one timeline comment, in one ``batch``
request. "Once" is guarded by the lifecycle record: ``Journey.ai_tagged_at`` is set with a
compare-and-set (``UPDATE … WHERE ai_tagged_at IS NULL``) before anything is written, so
two workers (the event job and the "Mark as AI-lead" robot) cannot both tag; if the write
fails the mark is taken back and the error raised, so a retry can tag.

The write fires ``ONCRMLEADUPDATE`` again; the event job sees the field already filled and
the record already tagged, and writes nothing (the loop guard).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_
from sqlalchemy import update
from sqlalchemy.orm import Session

from b24app import logs
from b24app.bitrix.client import BitrixClient
from b24app.context import Services
from b24app.leads.classify import channel_label
from b24app.leads.journeys import crm_target
from b24app.leads.journeys import CrmTarget
from b24app.leads.journeys import journey_where
from b24app.leads.lifecycle import get_lead
from b24app.storage.db import rows_affected
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

DEFAULT_LEAD_FIELD = "UF_CRM_B24APP_AI"
NOTE_LIMIT = 500


def field_value(channel: str, lang: str) -> str:
    """The lead field's value: ``AI-lead · Telegram``."""
    return f"AI-lead · {channel_label(channel, lang)}"


def comment_text(channel: str, lang: str, note: str | None) -> str:
    """The timeline comment, in the portal's language."""
    label = channel_label(channel, lang)
    if lang.startswith("ru"):
        text = f"b24app: лид отмечен как AI-лид (канал: {label})."
    else:
        text = f"b24app: lead tagged as an AI-lead (channel: {label})."
    if note:
        text += " " + note.strip()[:NOTE_LIMIT]
    return text


def _claim(session: Session, portal_id: int, lead_id: int, channel: str, stamp: Any) -> bool:
    """Mark the lead tagged (compare-and-set on ``ai_tagged_at IS NULL``); False if it was."""
    claimed = session.execute(
        update(Journey)
        .where(
            Journey.portal_id == portal_id,
            journey_where(lead_id),
            Journey.ai_tagged_at.is_(None),
            Journey.deleted_at.is_(None),
        )
        .values(ai_tagged_at=stamp, is_ai=True, ai_channel=channel)
    )
    return rows_affected(claimed) == 1


def tag_recorded(
    services: Services, portal_id: int, lead_id: int, channel: str, note: str | None = None
) -> bool:
    """Write the AI-lead field and one timeline comment on a journey the app has recorded
    (``lead_id``: its journey key); False if it is already tagged or not recorded.

    ``channel`` is an AI channel code (``telegram``, ``whatsapp``… see
    :data:`b24app.leads.classify.CHANNEL_LABELS`). A journey the app may not have seen yet
    is tagged with :func:`b24app.leads.tagging.tag_ai_lead`, which records it first.

    :raise BitrixError: the portal refused the write (the lead stays untagged for a retry).
    """
    channel = (channel or "other")[:64]
    with services.db() as session:
        portal = session.get(Portal, portal_id)
        if portal is None:
            return False
        member_id = portal.member_id
        lang = portal.lang or "ru"
        lead_field = str((portal.registration or {}).get("lead_field") or DEFAULT_LEAD_FIELD)
        deal_field = str((portal.registration or {}).get("deal_field") or lead_field)
    with logs.bind(member_id=member_id, lead_id=lead_id):
        stamp = utc_now()
        with services.db() as session:
            if not _claim(session, portal_id, lead_id, channel, stamp):
                return False
            # The journey may live on its deal now: the field and the comment go there.
            target = crm_target(get_lead(session, portal_id, lead_id), lead_id)
        try:
            answer = services.bitrix(member_id).batch(
                {
                    "field": (
                        "crm.item.update",
                        {
                            "entityTypeId": target.entity_type_id,
                            "id": target.entity_id,
                            "fields": {
                                (lead_field if target.entity_type_id == 1 else deal_field): (
                                    field_value(channel, lang)
                                )
                            },
                            "useOriginalUfNames": "Y",
                        },
                    ),
                    "comment": (
                        "crm.timeline.comment.add",
                        {
                            "fields": {
                                "ENTITY_ID": target.entity_id,
                                "ENTITY_TYPE": target.entity_type,
                                "COMMENT": comment_text(channel, lang, note),
                            }
                        },
                    ),
                },
                halt=True,
            )
            answer.raise_first_error()
            if "comment" not in answer.results:
                raise RuntimeError("the timeline comment was not added")
        except Exception:
            with services.db() as session:
                session.execute(
                    update(Journey)
                    .where(
                        Journey.portal_id == portal_id,
                        journey_where(lead_id),
                        Journey.ai_tagged_at == stamp,
                    )
                    .values(ai_tagged_at=None)
                )
            raise
        log.info("lead tagged as AI-lead (%s)", channel)
        return True


@dataclass(frozen=True)
class _Claims:
    """The journeys one :func:`tag_ai_leads` call claimed, and how to write on each."""

    member_id: str
    lang: str
    fields: dict[int, str]  # entity type id (1 lead, 2 deal) → the AI user field's name
    channels: dict[int, str]  # journey key → channel
    targets: dict[int, CrmTarget]


def tag_ai_leads(services: Services, portal_id: int, channels: dict[int, str]) -> set[int]:
    """:func:`tag_recorded` for many journeys of one portal at once (the coalesced intake;
    keys are lead ids or -deal ids, each written on the lead or deal the journey lives on):
    every claim first, then ONE batch of field writes (50 per request), then one batch of
    timeline comments for the leads whose field was written — the order of the single-lead
    path (field, then comment) kept per lead. A lead whose write failed is un-claimed, as
    in :func:`tag_recorded`; returns the ids tagged."""
    if not channels:
        return set()
    stamp = utc_now()
    claims = _claim_all(services, portal_id, channels, stamp)
    if claims is None or not claims.channels:
        return set()
    client = services.bitrix(claims.member_id)
    failed: set[int] = set()
    try:
        failed = _write_fields(client, claims)
        written = [i for i in claims.channels if i not in failed]
        if written:
            failed |= _write_comments(client, claims, written)
    except Exception:
        failed = set(claims.channels)
        raise
    finally:
        if failed:
            _unclaim(services, portal_id, failed, stamp)
    tagged = set(claims.channels) - failed
    log.info("%d lead(s) tagged as AI-leads in one batch", len(tagged))
    return tagged


def _claim_all(
    services: Services, portal_id: int, channels: dict[int, str], stamp: Any
) -> _Claims | None:
    with services.db() as session:
        portal = session.get(Portal, portal_id)
        if portal is None:
            return None
        lead_field = str((portal.registration or {}).get("lead_field") or DEFAULT_LEAD_FIELD)
        deal_field = str((portal.registration or {}).get("deal_field") or lead_field)
        claims = _Claims(portal.member_id, portal.lang or "ru", {1: lead_field, 2: deal_field},
                         {}, {})  # fmt: skip
        for key, raw in channels.items():
            channel = (raw or "other")[:64]
            if _claim(session, portal_id, key, channel, stamp):
                claims.channels[key] = channel
                # A lead's or a deal's journey (key -deal_id); it may live on its deal now.
                claims.targets[key] = crm_target(get_lead(session, portal_id, key), key)
        return claims


def _name(key: int) -> str:
    """A journey key in a batch command name: letters, digits and "_" (no "-")."""
    return f"n{-key}" if key < 0 else str(key)


def _write_fields(client: BitrixClient, claims: _Claims) -> set[int]:
    """One batch of field writes; returns the keys whose write failed."""
    fields = client.batch(
        {
            f"f{_name(key)}": (
                "crm.item.update",
                {
                    "entityTypeId": claims.targets[key].entity_type_id,
                    "id": claims.targets[key].entity_id,
                    "fields": {
                        claims.fields[claims.targets[key].entity_type_id]: field_value(
                            channel, claims.lang
                        )
                    },
                    "useOriginalUfNames": "Y",
                },
            )
            for key, channel in claims.channels.items()
        }
    )
    return {
        i
        for i in claims.channels
        if f"f{_name(i)}" in fields.errors or f"f{_name(i)}" not in fields.results
    }


def _write_comments(client: BitrixClient, claims: _Claims, written: list[int]) -> set[int]:
    """One batch of timeline comments; returns the keys whose comment failed."""
    notes = client.batch(
        {
            f"c{_name(key)}": (
                "crm.timeline.comment.add",
                {
                    "fields": {
                        "ENTITY_ID": claims.targets[key].entity_id,
                        "ENTITY_TYPE": claims.targets[key].entity_type,
                        "COMMENT": comment_text(claims.channels[key], claims.lang, None),
                    }
                },
            )
            for key in written
        }
    )
    return {
        i for i in written if f"c{_name(i)}" in notes.errors or f"c{_name(i)}" not in notes.results
    }


def _unclaim(services: Services, portal_id: int, failed: set[int], stamp: Any) -> None:
    with services.db() as session:
        session.execute(
            update(Journey)
            .where(
                Journey.portal_id == portal_id,
                or_(*(journey_where(key) for key in sorted(failed))),
                Journey.ai_tagged_at == stamp,
            )
            .values(ai_tagged_at=None)
        )
    log.warning("AI tag not written for %d lead(s) of portal %s", len(failed), portal_id)
