"""The portal's own names for codes: lead sources and statuses, deal stages of every
pipeline (``crm.status.list``) and employees (``user.get``), kept in the ``portal_directory``
table.

Pages never call Bitrix24: they read the table (one small indexed query per page) through
:class:`Names`. A job refreshes it — after install (the first page open finds it empty and
queues it), whenever a page finds it older than ``TTL``, and from cron — in one ``batch``
request (statuses, plus ``user.get`` pages of 50). An employee the portal no longer returns
(dismissed, deleted) keeps the last name seen, marked inactive; an id never seen shows as
"Employee #7"; a source code the portal does not know shows the code (an open-line code
``<line>|<TYPE>`` as "Open channel <line> · <Type>").
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import DuplicateJobError
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app import context
from b24app import i18n
from b24app.context import Services
from b24app.storage.models import DirectoryEntry
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

TTL = dt.timedelta(hours=6)
MAX_NAME = 255
USER_PAGES = 20  # 1,000 employees in the one batch; more come on the next refresh's pages


# -- reading (pages, reports) -------------------------------------------------------------


@dataclass
class Names:
    """Names of one portal's codes, loaded once per page."""

    lang: str
    sources: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, tuple[str, int]] = field(default_factory=dict)
    deal_stages: dict[str, str] = field(default_factory=dict)
    users: dict[int, tuple[str, bool]] = field(default_factory=dict)
    refreshed_at: dt.datetime | None = None

    def source(self, code: str | None) -> str:
        """The portal's name of a source code; "" for no source."""
        code = (code or "").strip()
        if not code:
            return ""
        if code in self.sources:
            return self.sources[code]
        line, sep, kind = code.partition("|")
        if sep and line and kind:
            return i18n.translate(self.lang, "dir.openline", line=line, type=kind.title())
        return code

    def status(self, status_id: str | None) -> str | None:
        """The portal's name of a lead status, or ``None`` when unknown."""
        entry = self.statuses.get(status_id or "")
        return entry[0] if entry else None

    def deal_stage(self, stage_id: str | None) -> str | None:
        """The portal's name of a deal stage (``NEW``, ``C3:WON``), or ``None`` when unknown."""
        return self.deal_stages.get(stage_id or "")

    def status_sort(self, status_id: str | None) -> int | None:
        entry = self.statuses.get(status_id or "")
        return entry[1] if entry else None

    def user(self, user_id: int | None) -> str:
        """An employee's name; never empty."""
        if user_id is None:
            return i18n.translate(self.lang, "group.unassigned")
        entry = self.users.get(int(user_id))
        if entry is None or not entry[0].strip():
            return i18n.translate(self.lang, "dir.user_unknown", id=user_id)
        name, active = entry
        return name if active else i18n.translate(self.lang, "dir.user_inactive", name=name)


def load_names(session: Session, portal_id: int, lang: str) -> Names:
    """Every name of the portal (a few hundred rows at most), one query."""
    names = Names(lang)
    rows = session.execute(
        select(
            DirectoryEntry.kind,
            DirectoryEntry.code,
            DirectoryEntry.name,
            DirectoryEntry.sort,
            DirectoryEntry.active,
            DirectoryEntry.refreshed_at,
        ).where(DirectoryEntry.portal_id == portal_id)
    )
    for kind, code, name, sort, active, refreshed_at in rows:
        if kind == "source":
            names.sources[code] = name
        elif kind == "status":
            names.statuses[code] = (name, sort)
        elif kind == "deal_stage":
            names.deal_stages[code] = name
        elif kind == "user" and code.isdigit():
            names.users[int(code)] = (name, bool(active))
        if names.refreshed_at is None or refreshed_at > names.refreshed_at:
            names.refreshed_at = refreshed_at
    return names


def is_stale(names: Names, now: dt.datetime | None = None) -> bool:
    return names.refreshed_at is None or (now or utc_now()) - names.refreshed_at > TTL


def request_refresh(services: Services, member_id: str, portal_id: int) -> bool:
    """Queue a refresh (deduplicated per portal); never waits for it. For views."""
    try:
        services.queue("default").enqueue(
            refresh_directory,
            member_id,
            job_id=f"directory-{portal_id}",
            unique=True,
            result_ttl=0,
            failure_ttl=3600,
        )
    except DuplicateJobError:
        return False
    except RedisError as exc:  # names are a nicety: the page goes on with codes
        log.warning("directory refresh not queued: %s", type(exc).__name__)
        return False
    return True


# -- refreshing (jobs) --------------------------------------------------------------------


def full_name(user: dict[str, Any]) -> str:
    """ "Name Last name" trimmed to the column; "" when the portal has neither."""
    parts = [str(user.get(k) or "").strip() for k in ("NAME", "LAST_NAME")]
    text = " ".join(p for p in parts if p)
    return text[:MAX_NAME]


def fetch(services: Services, member_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Statuses and users, in one batch request. The status list is unfiltered (not paginated:
    a few hundred rows at most): deal stages live in ``DEAL_STAGE_<pipeline>`` entities whose
    ids a filter would have to know first."""
    client = services.bitrix(member_id)
    commands: dict[str, tuple[str, dict[str, Any] | None]] = {
        "statuses": ("crm.status.list", {"order": {"SORT": "ASC"}}),
    }
    for page in range(USER_PAGES):
        commands[f"users{page}"] = ("user.get", {"start": page * 50})
    result = client.batch(commands)
    statuses = list(result.results.get("statuses") or [])
    users: list[dict[str, Any]] = []
    for page in range(USER_PAGES):
        rows = result.results.get(f"users{page}") or []
        users.extend(r for r in rows if isinstance(r, dict))
        if len(rows) < 50:
            break
    return statuses, users


def store(
    session: Session,
    portal_id: int,
    statuses: list[dict[str, Any]],
    users: list[dict[str, Any]],
    now: dt.datetime | None = None,
) -> int:
    """Upsert the names; users not returned any more are kept, marked inactive."""
    moment = now or utc_now()
    existing = {
        (e.kind, e.code): e
        for e in session.scalars(
            select(DirectoryEntry).where(DirectoryEntry.portal_id == portal_id)
        )
    }
    fresh: dict[tuple[str, str], tuple[str, int, bool]] = {}
    for status in statuses:
        entity = str(status.get("ENTITY_ID") or "")
        kind = {"SOURCE": "source", "STATUS": "status"}.get(entity)
        if entity == "DEAL_STAGE" or entity.startswith("DEAL_STAGE_"):
            kind = "deal_stage"  # ids are unique across pipelines: "NEW", "C3:NEW"
        code = str(status.get("STATUS_ID") or "")[:64]
        if kind and code:
            name = str(status.get("NAME") or "").strip()[:MAX_NAME] or code
            fresh[(kind, code)] = (name, int(status.get("SORT") or 0), True)
    for user in users:
        if user.get("ID") is None:
            continue
        active = user.get("ACTIVE") not in (False, "N", "0", 0)
        fresh[("user", str(user["ID"]))] = (full_name(user), 0, active)
    for key, (name, sort, active) in fresh.items():
        entry = existing.get(key)
        if entry is None:
            entry = DirectoryEntry(portal_id=portal_id, kind=key[0], code=key[1])
            session.add(entry)
        entry.name, entry.sort, entry.active, entry.refreshed_at = name, sort, active, moment
    for key, entry in existing.items():
        if key not in fresh:
            entry.active = False if key[0] == "user" else entry.active
            entry.refreshed_at = moment
    return len(fresh)


def refresh(services: Services, member_id: str) -> int:
    """Fetch and store one portal's names; the number of names stored."""
    with services.db() as session:
        portal = session.scalar(select(Portal).where(Portal.member_id == member_id))
        if portal is None or portal.status != PortalStatus.ACTIVE:
            return 0
        portal_id = portal.id
    statuses, users = fetch(services, member_id)
    with services.db() as session:
        return store(session, portal_id, statuses, users)


def refresh_directory(member_id: str) -> int:
    """RQ job: refresh one portal's names (idempotent)."""
    return refresh(context.current(), member_id)


def refresh_stale_directories() -> int:
    """Cron: queue a refresh for every active portal whose names are older than ``TTL``."""
    services = context.current()
    queued = 0
    with services.db() as session:
        portals = session.execute(
            select(Portal.id, Portal.member_id).where(Portal.status == PortalStatus.ACTIVE)
        ).all()
        stale = [(pid, mid) for pid, mid in portals if is_stale(load_names(session, pid, "ru"))]
    for portal_id, member_id in stale:
        queued += request_refresh(services, member_id, portal_id)
    return queued
