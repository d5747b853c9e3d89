"""The CRM of an emulated portal: leads, deals and their pipelines, contacts, statuses, user
fields, stage history, activities and timeline comments, and what people do with them in the
portal's UI (each such action fires the events Bitrix24 fires).

Row logic lives beside it: :mod:`devportal.leads` (lead rows), :mod:`devportal.deals` (deals,
pipelines, contacts, conversion, the simple CRM mode).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from typing import TYPE_CHECKING

from devportal import contacts
from devportal import deals as deals_mod
from devportal import defaults
from devportal.leads import create_lead
from devportal.leads import LeadStore
from devportal.leads import modify_lead
from devportal.rest import crm_lead
from devportal.rest import crm_misc

if TYPE_CHECKING:
    from devportal.eventbus import Deliveries
    from devportal.portal import Portal


def _ts(at: datetime | float | None) -> float | None:
    return at.timestamp() if isinstance(at, datetime) else at


class Crm:
    """CRM state of one portal and the CRM actions of its people."""

    def __init__(self, portal: Portal, crm_mode: str) -> None:
        self.portal = portal
        self.leads = LeadStore()
        self.statuses: dict[int, dict[str, Any]] = {}
        self.next_status_id = 1
        self.userfields: dict[int, dict[str, Any]] = {}
        self.next_userfield_id = 100
        self.stage_history: list[dict[str, Any]] = []
        self.stage_history_ids: list[int] = []
        self.stage_history_by_id: dict[int, dict[str, Any]] = {}
        self.activities: dict[int, dict[str, Any]] = {}
        self.activity_ids: list[int] = []
        self.next_activity_id = 1
        self.timeline_comments: list[dict[str, Any]] = []
        # Deals, pipelines, contacts and the CRM mode (devportal.deals)
        self.crm_mode = deals_mod.SIMPLE if crm_mode == "simple" else deals_mod.CLASSIC
        self.deals = LeadStore()
        self.deal_categories: dict[int, dict[str, Any]] = {}
        self.deal_userfields: dict[int, dict[str, Any]] = {}
        self.deal_history: list[dict[str, Any]] = []
        self.deal_history_ids: list[int] = []
        self.deal_history_by_id: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.next_contact_id = 1
        self._seed_statuses()

    def seed_pipeline(self) -> None:
        """The default deal pipeline (once the portal holds this backend: devportal.deals)."""
        ru = self.portal.lang.startswith("ru")
        deals_mod.seed_pipeline(self.portal, 0, "Общее" if ru else "General", 0)

    # -- statuses, user fields, stage history ------------------------------------------------

    def _seed_statuses(self) -> None:
        en = not self.portal.lang.startswith("ru")
        for status_id, ru, eng, sort, color, success in defaults.LEAD_STATUSES:
            self.add_status("STATUS", status_id, eng if en else ru, sort, color, True, success)
        for i, (status_id, ru, eng) in enumerate(defaults.LEAD_SOURCES):
            self.add_status("SOURCE", status_id, eng if en else ru, (i + 1) * 10, "", True, False)

    def add_status(
        self, entity: str, status_id: str, name: str, sort: int, color: str, system: bool,
        success: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        row = {
            "ID": str(self.next_status_id),
            "ENTITY_ID": entity,
            "STATUS_ID": status_id,
            "NAME": name,
            "NAME_INIT": name if system else "",
            "SORT": str(sort),
            "SYSTEM": "Y" if system else "N",
            "CATEGORY_ID": None,
            "COLOR": color or None,
            "_success": success,
        }
        self.statuses[self.next_status_id] = row
        self.next_status_id += 1
        return row

    def status_semantics(self, entity: str, status_id: str | None) -> str | None:
        """``S`` for the success stage, ``F`` for stages sorted after it, else None."""
        if not (entity == "STATUS" or entity.startswith("DEAL_STAGE")) or not status_id:
            return None
        rows = [r for r in self.statuses.values() if r["ENTITY_ID"] == entity]
        success = next((r for r in rows if r["_success"]), None)
        row = next((r for r in rows if r["STATUS_ID"] == status_id), None)
        if row is None or success is None:
            return None
        if row is success:
            return "S"
        return "F" if int(row["SORT"]) > int(success["SORT"]) else None

    def lead_status_ids(self) -> list[str]:
        rows = sorted(
            (r for r in self.statuses.values() if r["ENTITY_ID"] == "STATUS"),
            key=lambda r: int(r["SORT"]),
        )
        return [r["STATUS_ID"] for r in rows]

    def uf_names(self) -> list[str]:
        return [uf["FIELD_NAME"] for uf in self.userfields.values()]

    def record_stage(self, lead_id: int, status_id: str, type_id: int, ts: float) -> None:
        sem = self.status_semantics("STATUS", status_id) or "P"
        entry_id = len(self.stage_history) + 1
        entry = {
            "ID": entry_id,
            "TYPE_ID": type_id,
            "OWNER_ID": lead_id,
            "CREATED_TIME": self.portal.now_str(ts),
            "STATUS_ID": status_id,
            "STATUS_SEMANTIC_ID": sem,
        }
        self.stage_history.append(entry)
        self.stage_history_ids.append(entry_id)
        self.stage_history_by_id[entry_id] = entry

    def set_crm_mode(self, mode: str) -> None:
        """The admin switches the CRM mode (``simple`` / ``classic``)."""
        with self.portal.lock:
            self.crm_mode = deals_mod.SIMPLE if mode == "simple" else deals_mod.CLASSIC

    def add_lead_field(self, name: str, user_type: str, label: str) -> int:
        """The admin adds a lead user field in the CRM settings (no event)."""
        with self.portal.lock:
            return crm_lead.add_userfield(
                self.portal, {"FIELD_NAME": name, "USER_TYPE_ID": user_type,
                              "EDIT_FORM_LABEL": label, "LIST_COLUMN_LABEL": label},
            )  # fmt: skip

    # -- reading --------------------------------------------------------------------------------

    def lead(self, lead_id: int) -> dict[str, Any] | None:
        """The stored lead (``crm.lead.get`` shape), or None."""
        with self.portal.lock:
            row = self.leads.get(lead_id)
            return dict(row) if row else None

    def deal(self, deal_id: int) -> dict[str, Any] | None:
        """The stored deal (``crm.deal.get`` shape), or None."""
        with self.portal.lock:
            row = self.deals.get(deal_id)
            return dict(row) if row else None

    def deal_of_lead(self, lead_id: int) -> int | None:
        """The id of the deal a lead was converted into, or None."""
        with self.portal.lock:
            return next(
                (i for i, r in self.deals.rows.items() if r.get("LEAD_ID") == str(lead_id)), None
            )

    # -- what people do in the CRM UI --------------------------------------------------------

    def _crm_event(self, event: str, entity_id: int, by_user: int | None) -> Deliveries:
        """The deliveries of a lead/deal event (``{"FIELDS": {"ID": …}}``)."""
        return self.portal.bus.deliveries(event, {"FIELDS": {"ID": str(entity_id)}}, by_user)

    def _delete_row(
        self, store: LeadStore, entity_id: int, event: str, by_user: int | None
    ) -> None:
        """Delete a lead/deal row (KeyError if absent) and fire ``event``."""
        with self.portal.lock:
            if not store.delete(entity_id):
                raise KeyError(entity_id)
            out = self._crm_event(event, entity_id, by_user)
        self.portal.bus.send(out)

    def add_lead(
        self,
        fields: dict[str, Any] | None = None,
        *,
        by_user: int | None = 1,
        created_at: datetime | float | None = None,
        events: bool = True,
    ) -> int:
        """Create a lead as ``by_user`` (None = an automation rule: event without tokens)."""
        p, ts = self.portal, _ts(created_at)
        author = by_user or p.admin_user_id
        with p.lock:
            lead_id = create_lead(p, dict(fields or {}), author, ts)
            out = self._crm_event("ONCRMLEADADD", lead_id, by_user) if events else []
            for name, data in deals_mod.after_lead_created(p, lead_id, author, ts):
                out += p.bus.deliveries(name, data, by_user) if events else []
        p.bus.send(out)
        return lead_id

    def update_lead(
        self,
        lead_id: int,
        fields: dict[str, Any],
        *,
        by_user: int | None = 1,
        at: datetime | float | None = None,
        events: bool = True,
    ) -> None:
        self._modify(modify_lead, "ONCRMLEADUPDATE", lead_id, fields, by_user, at, events)

    def delete_lead(self, lead_id: int, *, by_user: int | None = 1) -> None:
        self._delete_row(self.leads, lead_id, "ONCRMLEADDELETE", by_user)

    def add_deal(
        self,
        fields: dict[str, Any] | None = None,
        *,
        by_user: int | None = 1,
        created_at: datetime | float | None = None,
        events: bool = True,
    ) -> int:
        """Create a deal directly (no lead); fires ``ONCRMDEALADD``."""
        p = self.portal
        with p.lock:
            deal_id = deals_mod.create_deal(
                p, dict(fields or {}), by_user or p.admin_user_id, _ts(created_at)
            )
            out = self._crm_event("ONCRMDEALADD", deal_id, by_user) if events else []
        p.bus.send(out)
        return deal_id

    def update_deal(
        self,
        deal_id: int,
        fields: dict[str, Any],
        *,
        by_user: int | None = 1,
        at: datetime | float | None = None,
        events: bool = True,
    ) -> None:
        self._modify(deals_mod.modify_deal, "ONCRMDEALUPDATE", deal_id, fields, by_user, at,
                     events)  # fmt: skip

    def _modify(
        self,
        modify: Callable[..., Any],
        event: str,
        entity_id: int,
        fields: dict[str, Any],
        by_user: int | None,
        at: datetime | float | None,
        events: bool,
    ) -> None:
        """An item changed as a person would: the write, then its update event."""
        p = self.portal
        with p.lock:
            modify(p, entity_id, dict(fields), by_user or p.admin_user_id, _ts(at))
            out = self._crm_event(event, entity_id, by_user) if events else []
        p.bus.send(out)

    def delete_deal(self, deal_id: int, *, by_user: int | None = 1) -> None:
        self._delete_row(self.deals, deal_id, "ONCRMDEALDELETE", by_user)

    def add_contact(self, name: str, last_name: str = "", **fields: Any) -> int:
        """A CRM contact (a booking's client, a deal's ``CONTACT_ID``); no event."""
        p = self.portal
        with p.lock:
            return contacts.add_contact(
                p, {"NAME": name, "LAST_NAME": last_name, **fields}, p.admin_user_id, None
            )

    def convert_lead(
        self,
        lead_id: int,
        deal_fields: dict[str, Any] | None = None,
        *,
        by_user: int | None = 1,
        at: datetime | float | None = None,
    ) -> int:
        """A person converts a lead into contact + deal; returns the deal id."""
        p = self.portal
        with p.lock:
            deal_id, events = deals_mod.convert_lead(
                p, lead_id, by_user or p.admin_user_id, _ts(at), deal_fields
            )
            out = [d for name, data in events for d in p.bus.deliveries(name, data, by_user)]
        p.bus.send(out)
        return deal_id

    def add_activity(
        self,
        lead_id: int,
        *,
        kind: str = "call",
        direction: str = "outgoing",
        by_user: int | None = 1,
        subject: str = "",
        completed: bool = True,
        at: datetime | float | None = None,
    ) -> int:
        """A call/e-mail/meeting on a lead, as a manager logs it; fires ``ONCRMACTIVITYADD``."""
        p = self.portal
        fields = {
            "OWNER_TYPE_ID": 1,
            "OWNER_ID": lead_id,
            "TYPE_ID": {"meeting": 1, "call": 2, "task": 3, "email": 4}[kind],
            "DIRECTION": 2 if direction == "outgoing" else 1,
            "SUBJECT": subject or kind,
            "COMPLETED": "Y" if completed else "N",
            "RESPONSIBLE_ID": by_user or p.admin_user_id,
        }
        with p.lock:
            act_id = crm_misc.create_activity(p, fields, by_user or p.admin_user_id, _ts(at))
            out = self._crm_event("ONCRMACTIVITYADD", act_id, by_user)
        p.bus.send(out)
        return act_id

    def bulk_create_leads(
        self,
        n: int,
        *,
        status_id: Any = "NEW",
        source_id: Any = "CALL",
        assigned_by_id: Any = 1,
        start: datetime | float | None = None,
        step_seconds: float = 600.0,
        fields: Any = None,
    ) -> list[int]:
        """``n`` leads without events (a back-fill fixture). Any argument may be a callable
        ``f(i) -> value``; ``fields(i)`` returns extra fields. Stage history is recorded."""
        base = _ts(start)
        if base is None:
            base = time.time() - n * step_seconds

        def pick(value: Any, i: int) -> Any:
            return value(i) if callable(value) else value

        ids = []
        with self.portal.lock:
            for i in range(n):
                row = {
                    "TITLE": f"Лид #{self.leads.next_id}",
                    "STATUS_ID": pick(status_id, i),
                    "SOURCE_ID": pick(source_id, i),
                    "ASSIGNED_BY_ID": pick(assigned_by_id, i),
                }
                if fields is not None:
                    row.update(pick(fields, i) or {})
                ids.append(create_lead(self.portal, row, 1, base + i * step_seconds))
        return ids
