"""What the app registers on a portal, done idempotently in as few HTTP requests as possible.

One batch reads the current state (bound events, robots, placements, our user field, lead
statuses); one batch writes only what is missing. A second install therefore issues one read
batch and no write at all, and "already exists" answers count as success (a concurrent install
may have won the race). Robots are updated (``bizproc.robot.update``) only when their
definition changed, which is how an app update reaches existing portals.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from b24app.appointments.config import date_fields
from b24app.appointments.config import workflow_templates
from b24app.assistant import bot as assistant_bot
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import already_exists
from b24app.handlers.definitions import APP_EVENTS
from b24app.handlers.definitions import CLIENT_EVENTS
from b24app.handlers.definitions import EVENTS
from b24app.install import deal_registration
from b24app.install.stages import semantics
from b24app.install.stages import STAGES
from b24app.placements.definitions import PLACEMENTS
from b24app.robots import definitions as robot_definitions

log = logging.getLogger(__name__)

LEAD_FIELD = "B24APP_AI"  # Bitrix24 prefixes UF_CRM_
LEAD_FIELD_NAME = "UF_CRM_" + LEAD_FIELD


@dataclass
class RegistrationReport:
    """What one registration run did; ``writes`` is 0 on an already registered portal."""

    events_bound: list[str] = field(default_factory=list)
    robots_added: list[str] = field(default_factory=list)
    robots_updated: list[str] = field(default_factory=list)
    placements_bound: list[str] = field(default_factory=list)
    field_created: bool = False
    statuses_created: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    robots_hash: str = ""
    # Deals (b24app.install.deal_registration)
    crm_mode: str = "classic"
    deal_stages: dict[str, dict[str, str]] = field(default_factory=dict)
    pipelines: dict[str, str] = field(default_factory=dict)
    deal_stage_list: dict[str, list[list[str]]] = field(default_factory=dict)
    deal_field_created: bool = False
    # The assistant's Open Lines bot (b24app.assistant.bot): id and definition fingerprint.
    bot_id: int | None = None
    bot_hash: str = ""
    bot_written: bool = False
    # The portal's lead/deal business process templates; None when they could not be read.
    workflow_templates: list[dict[str, Any]] | None = None
    date_fields: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return (
            len(self.events_bound)
            + len(self.robots_added)
            + len(self.robots_updated)
            + len(self.placements_bound)
            + int(self.field_created)
            + int(self.deal_field_created)
            + len(self.statuses_created)
            + int(self.bot_written)
        )


def robots_hash(public_url: str) -> str:
    """A fingerprint of the robot definitions: changes when an app update changes a robot."""
    fields_ = robot_definitions.robot_fields(public_url)
    return hashlib.sha256(json.dumps(fields_, sort_keys=True).encode()).hexdigest()[:16]


def register(
    client: BitrixClient,
    public_url: str,
    lang: str,
    previous: dict[str, Any],
    *,
    add_deal_stages: bool = False,
) -> RegistrationReport:
    """Bring the portal to the registered state; returns what changed.

    ``previous`` is the ``Portal.registration`` stored by the last run (robot fingerprint).
    ``add_deal_stages``: the admin allows adding "Пришёл" / "Не пришёл" to deal pipelines.
    """
    base = public_url.rstrip("/")
    report = RegistrationReport(robots_hash=robots_hash(base))
    state = client.batch(
        {
            "events": ("event.get", {}),
            "robots": ("bizproc.robot.list", {}),
            "placements": ("placement.get", {}),
            "field": ("crm.lead.userfield.list", {"filter": {"FIELD_NAME": LEAD_FIELD_NAME}}),
            "statuses": (
                "crm.status.list",
                {"filter": {"ENTITY_ID": "STATUS"}, "order": {"SORT": "ASC"}},
            ),
            **deal_registration.deal_reads(LEAD_FIELD_NAME),
            # last: a portal without the imbot scope still gets everything else
            "bots": ("imbot.v2.Bot.list", {}),
            # the date fields the admin may pick as the appointment time
            "lead_fields": ("crm.lead.fields", {}),
            "deal_fields": ("crm.deal.fields", {}),
            # the reminders' "business process" channel: the admin picks one of these
            # (administrator-only and bizproc scope: optional like the bots)
            "workflow_templates": (
                "bizproc.workflow.template.list",
                {
                    "select": ["ID", "NAME", "ENTITY", "PARAMETERS"],
                    "filter": {"MODULE_ID": "crm"},
                    "order": {"NAME": "ASC"},
                },
            ),
        },
        halt=True,
    )
    if set(state.errors) - {"bots", "workflow_templates"}:
        raise RegistrationError(f"reading the portal state failed: {sorted(state.errors)}")
    writes: dict[str, tuple[str, dict[str, Any]]] = {}

    bound = {
        (e.get("event", "").upper(), e.get("handler")) for e in state.results.get("events") or []
    }
    wanted = [(name, f"{base}/handlers/events") for name in EVENTS]
    wanted += [(name, f"{base}/install/events") for name in APP_EVENTS]
    wanted += [(name, f"{base}{path}") for name, path in CLIENT_EVENTS.items()]
    for name, handler in wanted:
        if (name, handler) not in bound:
            writes[f"event:{name}"] = ("event.bind", {"event": name, "handler": handler})

    existing_robots = set(state.results.get("robots") or [])
    robots_changed = previous.get("robots_hash") != report.robots_hash
    for robot in robot_definitions.robot_fields(base):
        code = robot["CODE"]
        if code not in existing_robots:
            writes[f"robot_add:{code}"] = ("bizproc.robot.add", robot)
        elif robots_changed:
            robot_fields = {k: v for k, v in robot.items() if k != "CODE"}
            writes[f"robot_update:{code}"] = (
                "bizproc.robot.update",
                {"CODE": code, "FIELDS": robot_fields},
            )

    bound_placements = {
        (p.get("placement"), p.get("handler")) for p in state.results.get("placements") or []
    }
    for placement in PLACEMENTS:
        handler = f"{base}/app/{placement['path']}"
        if (placement["PLACEMENT"], handler) not in bound_placements:
            params = {k: v for k, v in placement.items() if k != "path"}
            params["HANDLER"] = handler
            writes[f"placement:{placement['PLACEMENT']}"] = ("placement.bind", params)

    if not state.results.get("field"):
        writes["field"] = ("crm.lead.userfield.add", {"fields": _lead_field()})
    if not state.results.get("deal_field"):
        writes["deal_field"] = ("crm.deal.userfield.add", {"fields": _lead_field()})
    report.crm_mode = deal_registration.crm_mode(state.results.get("crm_mode"))
    categories = deal_registration.category_ids(state.results.get("deal_categories"))
    all_statuses = list(state.results.get("all_statuses") or [])
    if add_deal_stages:
        added = deal_registration.missing_stages(categories, all_statuses, lang)
        for key, stage_fields in added.items():
            writes[f"deal_stage:{key}"] = ("crm.status.add", {"fields": stage_fields})
        all_statuses = deal_registration.with_added(all_statuses, added)
    report.deal_stages = deal_registration.map_deal_stages(categories, all_statuses)
    report.pipelines = deal_registration.pipeline_names(state.results.get("deal_categories"))
    report.deal_stage_list = deal_registration.stage_lists(
        deal_registration.category_ids(state.results.get("deal_categories")),
        all_statuses,
    )

    report.date_fields = date_fields(
        state.results.get("lead_fields"), state.results.get("deal_fields")
    )
    if "workflow_templates" in state.results:
        report.workflow_templates = workflow_templates(state.results["workflow_templates"])

    statuses, to_create = map_statuses(state.results.get("statuses") or [], lang)
    for stage, status_fields in to_create.items():
        writes[f"status:{stage}"] = ("crm.status.add", {"fields": status_fields})
    report.statuses = statuses

    if "bots" not in state.errors:
        bot_writes, report.bot_id, report.bot_hash = assistant_bot.plan(
            state.results.get("bots"), base, lang, previous
        )
        writes.update(bot_writes)

    if writes:
        result = client.batch(writes, halt=False)
        failed = {key: err for key, err in result.errors.items() if not already_exists(err)}
        optional = {k for k in failed if k.partition(":")[2] in CLIENT_EVENTS}
        for key in sorted(optional):  # no booking / imopenlines scope: the rest still works
            log.warning("optional %s not registered: %s", key, failed.pop(key).get("error"))
            writes.pop(key)
        if failed:
            raise RegistrationError(
                "registration failed: "
                + ", ".join(
                    f"{k} ({v.get('error') or v.get('error_description')})"
                    for k, v in sorted(failed.items())
                )
            )
        if "bot:register" in writes:
            report.bot_id = assistant_bot.bot_id_of(result.results.get("bot:register"))
    for key in writes:
        kind, _, name = key.partition(":")
        if kind == "event":
            report.events_bound.append(name)
        elif kind == "robot_add":
            report.robots_added.append(name)
        elif kind == "robot_update":
            report.robots_updated.append(name)
        elif kind == "placement":
            report.placements_bound.append(name)
        elif kind == "field":
            report.field_created = True
        elif kind == "deal_field":
            report.deal_field_created = True
        elif kind == "deal_stage":
            report.statuses_created.append(f"deal:{name}")
        elif kind == "status":
            report.statuses_created.append(name)
        elif kind == "bot":
            report.bot_written = True
    return report


class RegistrationError(RuntimeError):
    """The portal refused part of the registration (shown to the admin on the install page)."""


def _lead_field() -> dict[str, Any]:
    return {
        "FIELD_NAME": LEAD_FIELD,
        "USER_TYPE_ID": "string",
        "XML_ID": "B24APP_AI",
        "SORT": 500,
        "MULTIPLE": "N",
        "MANDATORY": "N",
        "SHOW_FILTER": "Y",
        "SHOW_IN_LIST": "Y",
        "EDIT_FORM_LABEL": {"ru": "ИИ-лид", "en": "AI lead"},
        "LIST_COLUMN_LABEL": {"ru": "ИИ-лид", "en": "AI lead"},
        "LIST_FILTER_LABEL": {"ru": "ИИ-лид", "en": "AI lead"},
    }


def map_statuses(
    items: list[dict[str, Any]], lang: str
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Map our stages onto the portal's own lead statuses; return the map and what to create.

    * new — the portal's first in-progress status (lowest SORT), whatever its ID.
    * qualified / confirmed / came / no_show — an existing status with our ID or a known
      name; else *came* is the portal's success status; the others are created: qualified
      and confirmed between the last in-progress status and success, no-show after all.
    """
    ordered = sorted(items, key=lambda i: int(i.get("SORT") or 0))
    process = [i for i in ordered if semantics(i) == "P"]
    success = next((i for i in ordered if semantics(i) == "S"), None)
    mapping: dict[str, str] = {}
    to_create: dict[str, dict[str, Any]] = {}
    if process:
        mapping["new"] = str(process[0]["STATUS_ID"])
    for stage, spec in STAGES.items():
        match = next(
            (
                i
                for i in ordered
                if i.get("STATUS_ID") == spec["status_id"]
                or str(i.get("NAME", "")).strip().casefold() in spec["aliases"]
            ),
            None,
        )
        if match is not None:
            mapping[stage] = str(match["STATUS_ID"])
        elif stage == "came" and success is not None:
            mapping[stage] = str(success["STATUS_ID"])
        else:
            mapping[stage] = spec["status_id"]
            to_create[stage] = {
                "ENTITY_ID": "STATUS",
                "STATUS_ID": spec["status_id"],
                "NAME": spec["name"].get(lang, spec["name"]["ru"]),
            }
    last_process = int(process[-1]["SORT"]) if process else 10
    success_sort = int(success["SORT"]) if success else last_process + 30
    gap = max(success_sort - last_process, 3)
    sorts = {
        "qualified": last_process + gap // 3,
        "confirmed": last_process + 2 * gap // 3,
        "came": success_sort - 1,
        "no_show": int(ordered[-1]["SORT"]) + 10 if ordered else 100,
    }
    for stage, status_fields in to_create.items():
        status_fields["SORT"] = sorts[stage]
    return mapping, to_create
