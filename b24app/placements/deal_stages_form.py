"""The settings page's "deal stages per pipeline" block: one select per pipeline and lifecycle
stage (``deal_stage_<pipeline>_<stage>``), stored as ``settings["deal_stage_map"]``.

A select left on "default" stores ``"default"`` (the install's default from the stage
semantics and names applies; stored so that it replaces an earlier choice when the settings
merge); "—" stores ``"none"``: the stage is not mapped at all.
"""

from __future__ import annotations

import re
from typing import Any

STAGES = ("qualified", "confirmed", "came", "no_show")
NONE = "none"
DEFAULT = "default"
_FIELD = re.compile(r"^deal_stage_(\d{1,6})_(qualified|confirmed|came|no_show)$")


def form_to_changes(form: dict[str, Any]) -> dict[str, Any]:
    """``{"deal_stage_map": {"<pipeline>": {stage: STAGE_ID | "none" | "default"}}}``."""
    out: dict[str, dict[str, str]] = {}
    shown = "deal_stages_shown" in form
    for name, value in form.items():
        match = _FIELD.match(str(name))
        if match is None:
            continue
        pipeline = out.setdefault(match.group(1), {})
        chosen = str(value or "").strip()
        pipeline[match.group(2)] = chosen[:64] or DEFAULT
    changes: dict[str, Any] = {"deal_stage_map": out} if out else {}
    if shown:
        checked = str(form.get("deal_stages_add_missing", "")).lower() in ("on", "1", "true", "y")
        changes["deal_stages_add_missing"] = checked
    return changes


def pipelines_view(registration: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """What the block shows: each pipeline with its stages, default map and current choice."""
    lists = registration.get("deal_stage_list") or {}
    defaults = registration.get("deal_stages") or {}
    names = registration.get("pipelines") or {}
    chosen = settings.get("deal_stage_map") or {}
    out = []
    for key in sorted(set(lists) | set(defaults), key=lambda k: int(k)):
        out.append(
            {
                "id": key,
                "name": names.get(key) or f"#{key}",
                "stages": [{"id": s[0], "name": s[1]} for s in lists.get(key) or []],
                "defaults": dict(defaults.get(key) or {}),
                "chosen": dict(chosen.get(key) or {}),
            }
        )
    return out
