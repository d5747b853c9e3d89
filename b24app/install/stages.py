"""Our lifecycle stages in the portal's CRM, per entity kind: the lead status or deal stage we
create when the portal has none, the names that make an existing one count as ours, how to
read a status' semantics, and the default maps of the portal's own stages onto ours.

* **Lead statuses** (:func:`map_statuses`): one map for the portal (``registration
  ["statuses"]``).
* **Deal stages, per pipeline** (``registration["deal_stages"] = {"<category id>": {stage:
  STAGE_ID}}``): *new* = the pipeline's first in-progress stage; *qualified* / *confirmed* /
  *came* / *no_show* = a stage with one of the known names (the same aliases as for lead
  statuses); else *came* = the success (``S``) stage. Failure (``F``) stages are *junk* by
  semantics; unmapped stages are *other*. The admin edits the map on the settings page
  (``settings["deal_stage_map"]`` overrides per pipeline: :mod:`b24app.leads.pipelines`).

The registration (:mod:`b24app.install.registration`) reads what these need in its one read
batch (:func:`deal_reads`: the CRM mode, our deal user field, the pipelines and every status).
"""

from __future__ import annotations

from typing import Any

# Our lifecycle stages, the status we create when the portal has none, and the names that
# make an existing status count as ours (admins often created "Пришёл" themselves).
STAGES: dict[str, dict[str, Any]] = {
    "qualified": {
        "status_id": "B24APP_QUALIFIED",
        "name": {"ru": "Квалифицирован", "en": "Qualified"},
        "aliases": {"квалифицирован", "квалифицирована", "qualified", "квалификация"},
    },
    "confirmed": {
        "status_id": "B24APP_CONFIRMED",
        "name": {"ru": "Запись подтверждена", "en": "Booking confirmed"},
        "aliases": {
            "запись подтверждена",
            "подтверждена",
            "подтвержден",
            "confirmed",
            "booking confirmed",
        },
    },
    "came": {
        "status_id": "B24APP_CAME",
        "name": {"ru": "Пришёл", "en": "Came"},
        "aliases": {"пришёл", "пришел", "пришла", "came", "visited", "визит состоялся"},
    },
    "no_show": {
        "status_id": "B24APP_NO_SHOW",
        "name": {"ru": "Не пришёл", "en": "No-show"},
        "aliases": {"не пришёл", "не пришел", "не пришла", "no-show", "no show", "noshow"},
    },
}


def semantics(item: dict[str, Any]) -> str:
    """A lead status' or deal stage's semantics: ``P`` (in progress), ``S`` (success) or
    ``F`` (failure); Bitrix24 answers it as ``SEMANTICS`` or ``EXTRA.SEMANTICS``."""
    extra = item.get("EXTRA") or {}
    sem = item.get("SEMANTICS") or (extra.get("SEMANTICS") if isinstance(extra, dict) else None)
    return {"success": "S", "failure": "F", "process": "P"}.get(str(sem), str(sem or "P"))


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
        found = _existing(ordered, stage, success)
        if found is not None:
            mapping[stage] = found
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


# -- deal stages, per pipeline --------------------------------------------------------------

MODES = {1: "classic", 2: "simple"}


def deal_reads(field_name: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The deal part of the read batch."""
    return {
        "crm_mode": ("crm.settings.mode.get", {}),
        "deal_field": ("crm.deal.userfield.list", {"filter": {"FIELD_NAME": field_name}}),
        "deal_categories": ("crm.category.list", {"entityTypeId": 2}),
        "all_statuses": ("crm.status.list", {"order": {"SORT": "ASC"}}),
    }


def stage_entity(category_id: int) -> str:
    """The ``crm.status`` ENTITY_ID of a pipeline's stages."""
    return "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"


def crm_mode(value: Any) -> str:
    """``crm.settings.mode.get``'s answer as ``classic``/``simple`` (unknown → classic)."""
    try:
        return MODES.get(int(str(value)), "classic")
    except ValueError:
        return "classic"


def category_ids(answer: Any) -> list[int]:
    """Pipeline ids from ``crm.category.list`` (``{"categories": [...]}``); 0 always."""
    rows = answer.get("categories") if isinstance(answer, dict) else answer
    ids = {0}
    for row in rows or []:
        if isinstance(row, dict):
            try:
                ids.add(int(str(row.get("id", row.get("ID")))))
            except ValueError:
                continue
    return sorted(ids)


def stages_by_category(statuses: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The ``DEAL_STAGE[_N]`` rows of an unfiltered ``crm.status.list``, per pipeline."""
    out: dict[int, list[dict[str, Any]]] = {}
    for row in statuses:
        entity = str(row.get("ENTITY_ID") or "")
        if entity == "DEAL_STAGE":
            category = 0
        elif entity.startswith("DEAL_STAGE_"):
            try:
                category = int(entity.removeprefix("DEAL_STAGE_"))
            except ValueError:
                continue
        else:
            continue
        out.setdefault(category, []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: int(r.get("SORT") or 0))
    return out


def map_pipeline(stages: list[dict[str, Any]]) -> dict[str, str]:
    """Default map of one pipeline's stages onto our lifecycle stages (see the module doc)."""
    mapping: dict[str, str] = {}
    process = [s for s in stages if semantics(s) == "P"]
    success = next((s for s in stages if semantics(s) == "S"), None)
    if process:
        mapping["new"] = str(process[0]["STATUS_ID"])
    for stage in STAGES:
        found = _existing(stages, stage, success, suffix=True)
        if found is not None:
            mapping[stage] = found
    return mapping


def _existing(
    rows: list[dict[str, Any]], stage: str, success: dict[str, Any] | None, *,
    suffix: bool = False,
) -> str | None:  # fmt: skip
    """The id of the portal's status standing for our ``stage``: one with our id (with
    ``suffix``: ending in it, as a pipeline's ``C3:…`` stage ids do) or a known name; for
    *came* else the portal's success status; None: none."""
    ours, aliases = str(STAGES[stage]["status_id"]), STAGES[stage]["aliases"]
    match = next(
        (
            row
            for row in rows
            if (
                str(row.get("STATUS_ID", "")).endswith(ours)
                if suffix
                else row.get("STATUS_ID") == ours
            )
            or str(row.get("NAME", "")).strip().casefold() in aliases
        ),
        None,
    )
    if match is None and stage == "came":
        match = success
    return None if match is None else str(match["STATUS_ID"])


def map_deal_stages(
    categories: list[int], statuses: list[dict[str, Any]]
) -> dict[str, dict[str, str]]:
    """``{"<category id>": {stage: STAGE_ID}}`` for every pipeline (JSON keys are strings)."""
    per_category = stages_by_category(statuses)
    return {
        str(category): map_pipeline(per_category.get(category, []))
        for category in sorted(set(categories) | set(per_category))
    }


def stage_list(stages: list[dict[str, Any]]) -> list[list[str]]:
    """``[[STATUS_ID, NAME], …]`` of one pipeline (for the settings page's selects)."""
    return [[str(s.get("STATUS_ID") or ""), str(s.get("NAME") or "")] for s in stages]


def stage_lists(
    categories: list[int], statuses: list[dict[str, Any]]
) -> dict[str, list[list[str]]]:
    per_category = stages_by_category(statuses)
    return {
        str(c): stage_list(per_category.get(c, []))
        for c in sorted(set(categories) | set(per_category))
    }


# The stages the install may add to a pipeline (only where the admin allows it: the
# settings' ``deal_stages_add_missing``): "Пришёл" just before the won stage, "Не пришёл" after
# every stage (so Bitrix24 counts it as a failure).
ADDED = {
    "came": ("B24APP_CAME", {"ru": "Пришёл", "en": "Came"}),
    "no_show": ("B24APP_NO_SHOW", {"ru": "Не пришёл", "en": "No-show"}),
}


def missing_stages(
    categories: list[int], statuses: list[dict[str, Any]], lang: str
) -> dict[str, dict[str, Any]]:
    """``crm.status.add`` fields of the "Пришёл" / "Не пришёл" stages each pipeline lacks
    (no stage with our id or a known name), keyed ``"<category>:<stage>"``."""
    per_category = stages_by_category(statuses)
    out: dict[str, dict[str, Any]] = {}
    for category in sorted(set(categories) | set(per_category)):
        stages = per_category.get(category, [])
        prefix = "" if category == 0 else f"C{category}:"
        success = next((s for s in stages if semantics(s) == "S"), None)
        last = max((int(s.get("SORT") or 0) for s in stages), default=0)
        for stage, (suffix, names) in ADDED.items():
            aliases = STAGES[stage]["aliases"]
            if any(
                str(s.get("STATUS_ID", "")).endswith(suffix)
                or str(s.get("NAME", "")).strip().casefold() in aliases
                for s in stages
            ):
                continue
            if stage == "came" and success is None:
                continue
            sort = int(success["SORT"]) - 1 if stage == "came" and success else last + 10
            out[f"{category}:{stage}"] = {
                "ENTITY_ID": stage_entity(category),
                "STATUS_ID": prefix + suffix,
                "NAME": names.get(lang, names["ru"]),
                "SORT": sort,
            }
    return out


def with_added(
    statuses: list[dict[str, Any]], added: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The status list as it is once ``added`` exist (to map them at once)."""
    extra = [
        {**fields, "SEMANTICS": "F" if key.endswith(":no_show") else None}
        for key, fields in added.items()
    ]
    return [*statuses, *extra]


def pipeline_names(answer: Any) -> dict[str, str]:
    rows = answer.get("categories") if isinstance(answer, dict) else answer
    out: dict[str, str] = {}
    for row in rows or []:
        if isinstance(row, dict):
            out[str(row.get("id", row.get("ID")))] = str(row.get("name", row.get("NAME")) or "")
    return out
