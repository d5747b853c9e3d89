"""A portal's deal pipelines and CRM mode, as the journeys read them.

**Stage map per pipeline** (``registration["deal_stages"] = {"<category id>": {stage:
STAGE_ID}}``, defaults from :func:`b24app.install.stages.map_pipeline` at install),
overridden by the settings' ``deal_stage_map``: :func:`stage_map`. A pipeline created after
the install is read with its first deal (:func:`learn_pipeline`).

**CRM mode** (``crm.settings.mode.get``: 1 classic, 2 simple) is read at install, on every
``ONAPPUPDATE``, daily (:func:`refresh_all_crm_modes`) and whenever a lead arrives already
converted (:func:`refresh_crm_mode`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from b24app import context
from b24app.bitrix.errors import BitrixError
from b24app.bitrix.errors import PortalUnavailable
from b24app.context import Services
from b24app.install.stages import crm_mode
from b24app.install.stages import map_pipeline
from b24app.install.stages import stage_entity
from b24app.install.stages import stage_list
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)


def stage_map(
    registration: Mapping[str, Any], settings: Mapping[str, Any], category: int
) -> dict[str, str]:
    """The stage map of one pipeline: install defaults, then the admin's choices."""
    key = str(category)
    mapping = dict(((registration.get("deal_stages") or {}).get(key)) or {})
    override = (settings.get("deal_stage_map") or {}).get(key) or {}
    for stage, stage_id in override.items():
        if stage_id == "none":
            mapping.pop(stage, None)  # the admin says: no stage of this pipeline means it
        elif stage_id and stage_id != "default":
            mapping[stage] = str(stage_id)
    return mapping


def refresh_crm_mode(services: Services, member_id: str) -> str | None:
    """Read ``crm.settings.mode.get`` and store it; returns the mode (None: portal gone)."""
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status != PortalStatus.ACTIVE:
            return None
    mode = crm_mode(services.bitrix(member_id).call("crm.settings.mode.get", {}))
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is not None and portal.crm_mode != mode:
            log.info("CRM mode is now %s", mode)
            portal.crm_mode = mode
    return mode


def refresh_all_crm_modes() -> int:
    """Periodic job (daily): re-read the CRM mode of every active portal; returns how many
    changed."""
    services = context.current()
    with services.db() as session:
        portals = list(
            session.execute(
                select(Portal.member_id, Portal.crm_mode).where(
                    Portal.status == PortalStatus.ACTIVE
                )
            ).tuples()
        )
    changed = 0
    for member_id, before in portals:
        try:
            changed += int(refresh_crm_mode(services, member_id) not in (None, before))
        except (BitrixError, PortalUnavailable) as exc:
            log.warning("reading the CRM mode of %s failed: %s", member_id, exc)
    return changed


def learn_pipeline(services: Services, member_id: str, category_id: int) -> dict[str, Any]:
    """A pipeline created after install: read its stages, store the default map (one call);
    returns the portal's updated registration."""
    rows = services.bitrix(member_id).call(
        "crm.status.list",
        {"filter": {"ENTITY_ID": stage_entity(category_id)}, "order": {"SORT": "ASC"}},
    )
    stages = [r for r in rows or [] if isinstance(r, dict)]
    mapping = map_pipeline(stages)
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None:
            return {}
        registration = dict(portal.registration or {})
        maps = dict(registration.get("deal_stages") or {})
        maps[str(category_id)] = mapping
        registration["deal_stages"] = maps
        lists = dict(registration.get("deal_stage_list") or {})
        lists[str(category_id)] = stage_list(stages)
        registration["deal_stage_list"] = lists
        portal.registration = registration
        return registration
