"""What the app registers on a portal, done idempotently in as few HTTP requests as possible.

One batch reads the current state (bound events, robots, placements, the bot, and per entity
kind — lead, deal — our user field and the stages: :mod:`b24app.install.stages`); one batch
writes only what is missing. A second install therefore issues one read
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
from b24app.bitrix.client import BatchResult
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import already_exists
from b24app.handlers.definitions import APP_EVENTS
from b24app.handlers.definitions import CLIENT_EVENTS
from b24app.handlers.definitions import EVENTS
from b24app.install import stages
from b24app.placements.definitions import PLACEMENTS
from b24app.robots import definitions as robot_definitions
from b24app.storage.models import EntityType

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
    # Deals (b24app.install.stages: per pipeline)
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


Writes = dict[str, tuple[str, dict[str, Any]]]


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
    state = _read_state(client)
    writes: Writes = {
        **_plan_events(state, base),
        **_plan_robots(
            state, base, robots_changed=previous.get("robots_hash") != report.robots_hash
        ),
        **_plan_placements(state, base),
    }
    for kind in (EntityType.LEAD, EntityType.DEAL):
        writes.update(_KIND_PLANS[kind](state, report, lang, add_deal_stages))
    report.date_fields = date_fields(
        state.results.get("lead_fields"), state.results.get("deal_fields")
    )
    if "workflow_templates" in state.results:
        report.workflow_templates = workflow_templates(state.results["workflow_templates"])
    if "bots" not in state.errors:
        bot_writes, report.bot_id, report.bot_hash = assistant_bot.plan(
            state.results.get("bots"), base, lang, previous
        )
        writes.update(bot_writes)
    if writes:
        _write(client, writes, report)
    _count_writes(writes, report)
    return report


def _read_state(client: BitrixClient) -> BatchResult:
    """The one read batch; only the bot list and the workflow templates may fail."""
    state = client.batch(
        {
            "events": ("event.get", {}),
            "robots": ("bizproc.robot.list", {}),
            "placements": ("placement.get", {}),
            **_lead_reads(),
            **stages.deal_reads(LEAD_FIELD_NAME),
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
    return state


def _plan_events(state: BatchResult, base: str) -> Writes:
    bound = {
        (e.get("event", "").upper(), e.get("handler")) for e in state.results.get("events") or []
    }
    wanted = [(name, f"{base}/handlers/events") for name in EVENTS]
    wanted += [(name, f"{base}/install/events") for name in APP_EVENTS]
    wanted += [(name, f"{base}{path}") for name, path in CLIENT_EVENTS.items()]
    return {
        f"event:{name}": ("event.bind", {"event": name, "handler": handler})
        for name, handler in wanted
        if (name, handler) not in bound
    }


def _plan_robots(state: BatchResult, base: str, *, robots_changed: bool) -> Writes:
    """Robots missing are added; all are updated when their definitions changed."""
    existing_robots = set(state.results.get("robots") or [])
    writes: Writes = {}
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
    return writes


def _plan_placements(state: BatchResult, base: str) -> Writes:
    bound_placements = {
        (p.get("placement"), p.get("handler")) for p in state.results.get("placements") or []
    }
    writes: Writes = {}
    for placement in PLACEMENTS:
        handler = f"{base}/app/{placement['path']}"
        if (placement["PLACEMENT"], handler) not in bound_placements:
            params = {k: v for k, v in placement.items() if k != "path"}
            params["HANDLER"] = handler
            writes[f"placement:{placement['PLACEMENT']}"] = ("placement.bind", params)
    return writes


def _lead_reads() -> Writes:
    """The lead part of the read batch: our user field and the portal's lead statuses."""
    return {
        "field": ("crm.lead.userfield.list", {"filter": {"FIELD_NAME": LEAD_FIELD_NAME}}),
        "statuses": (
            "crm.status.list",
            {"filter": {"ENTITY_ID": "STATUS"}, "order": {"SORT": "ASC"}},
        ),
    }


def _plan_lead(
    state: BatchResult, report: RegistrationReport, lang: str, add_stages: bool
) -> Writes:
    """Our lead user field when missing; the lead status map, creating the statuses of our
    stages the portal lacks (always: a lead status is only ours to add)."""
    writes: Writes = {}
    if not state.results.get("field"):
        writes["field"] = ("crm.lead.userfield.add", {"fields": _lead_field()})
    report.statuses, to_create = stages.map_statuses(state.results.get("statuses") or [], lang)
    for stage, status_fields in to_create.items():
        writes[f"status:{stage}"] = ("crm.status.add", {"fields": status_fields})
    return writes


def _plan_deal(
    state: BatchResult, report: RegistrationReport, lang: str, add_stages: bool
) -> Writes:
    """Our deal user field when missing; the CRM mode and the stage map of every pipeline,
    adding "Пришёл" / "Не пришёл" only where the admin allows it (``add_stages``)."""
    writes: Writes = {}
    if not state.results.get("deal_field"):
        writes["deal_field"] = ("crm.deal.userfield.add", {"fields": _lead_field()})
    report.crm_mode = stages.crm_mode(state.results.get("crm_mode"))
    categories = stages.category_ids(state.results.get("deal_categories"))
    all_statuses = list(state.results.get("all_statuses") or [])
    if add_stages:
        added = stages.missing_stages(categories, all_statuses, lang)
        for key, stage_fields in added.items():
            writes[f"deal_stage:{key}"] = ("crm.status.add", {"fields": stage_fields})
        all_statuses = stages.with_added(all_statuses, added)
    report.deal_stages = stages.map_deal_stages(categories, all_statuses)
    report.pipelines = stages.pipeline_names(state.results.get("deal_categories"))
    report.deal_stage_list = stages.stage_lists(categories, all_statuses)
    return writes


_KIND_PLANS = {EntityType.LEAD: _plan_lead, EntityType.DEAL: _plan_deal}


def _write(client: BitrixClient, writes: Writes, report: RegistrationReport) -> None:
    """The one write batch; "already exists" counts as done, a missing optional scope drops
    its client-loop event (``writes`` then holds what was written)."""
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


def _count_writes(writes: Writes, report: RegistrationReport) -> None:
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
