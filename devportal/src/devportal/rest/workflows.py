"""``bizproc.workflow.template.list`` and ``bizproc.workflow.start``.

Both are administrator-only; ``start`` works only on paid, demo or NFR licences. Templates are
seeded per portal (``Portal.workflow_templates``); a started workflow is recorded in
``Portal.workflows`` with its parameters, which is how a test sees the "SMS" go out.
"""

from __future__ import annotations

import secrets
from functools import partial
from typing import Any

from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import method
from devportal.rest import paged

PAGE = 50
FREE_LICENCES = ("free", "basic_free")
DOCUMENT_CLASSES = {
    "CCrmDocumentLead": "LEAD",
    "CCrmDocumentDeal": "DEAL",
    "CCrmDocumentContact": "CONTACT",
    "CCrmDocumentCompany": "COMPANY",
}


@method("bizproc.workflow.template.list", admin=True)
def template_list(ctx: Ctx) -> ListResult:
    select = [str(s).upper() for s in as_list(ctx.param("SELECT", "select"))] or ["ID"]
    filter_ = {str(k).upper(): v for k, v in as_dict(ctx.param("FILTER", "filter")).items()}
    templates = list(ctx.portal.bizproc.workflow_templates)
    order = {
        str(k).upper(): str(v).upper() for k, v in as_dict(ctx.param("ORDER", "order")).items()
    }
    for key, direction in reversed(list(order.items())):  # stable: the first key sorts last
        templates.sort(key=partial(_field_sort_key, key), reverse=direction == "DESC")
    rows = []
    for template in templates:
        if any(str(template.get(k.lstrip("=!<>"))) != str(v) for k, v in filter_.items()):
            continue
        rows.append({k: template[k] for k in select if k in template})
    return paged(ctx, rows, PAGE)


def _field_sort_key(key: str, template: dict[str, Any]) -> tuple[int, int, str]:
    """Numbers (IDs) sort as numbers, the rest as text."""
    value = template.get(key)
    text = str(value if value is not None else "")
    return (0, int(text), "") if text.isdigit() else (1, 0, text.casefold())


@method("bizproc.workflow.start", admin=True)
def workflow_start(ctx: Ctx) -> str:
    licence = ctx.portal.license.split("_", 1)[-1]
    if licence in FREE_LICENCES:
        # The docs: paid, demo or NFR plans only; the exact error is not documented [inferred].
        raise RestError(403, "ACCESS_DENIED", "Business processes are not available on your plan")
    raw_template = ctx.param("TEMPLATE_ID")
    if raw_template in (None, "", "0"):
        raise RestError(400, "ERROR_WRONG_WORKFLOW_ID", "Empty TEMPLATE_ID")
    template = next(
        (t for t in ctx.portal.bizproc.workflow_templates if str(t["ID"]) == str(raw_template)),
        None,
    )
    if template is None:
        raise RestError(400, "ERROR_WRONG_WORKFLOW_ID", "Template not found")
    document = [str(x) for x in as_list(ctx.param("DOCUMENT_ID"))]
    if len(document) != 3 or document[0] != "crm" or document[1] not in DOCUMENT_CLASSES:
        raise RestError(400, "", "Wrong DOCUMENT_ID!")
    kind = DOCUMENT_CLASSES[document[1]]
    if not document[2].startswith(kind + "_"):
        raise RestError(400, "", "Incorrect document type!")
    if template["DOCUMENT_TYPE"] != kind:
        raise RestError(400, "", "Template type and DOCUMENT_ID mismatch!")
    workflow_id = f"{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"
    ctx.portal.bizproc.workflows.append(
        {
            "id": workflow_id,
            "template_id": int(template["ID"]),
            "document_id": document,
            "parameters": dict(as_dict(ctx.param("PARAMETERS"))),
            "user_id": ctx.user_id,
            "started": ctx.portal.now_str(),
        }
    )
    return workflow_id


def default_templates() -> list[dict[str, Any]]:
    """An "SMS reminder" template for deals and one for leads, with text/time parameters."""
    params = {
        "reminder_text": {"Name": "Text", "Type": "text", "Required": "1"},
        "appointment_time": {"Name": "Time", "Type": "datetime", "Required": "0"},
    }
    return [
        {"ID": "525", "NAME": "SMS-напоминание (сделка)", "MODULE_ID": "crm",
         "ENTITY": "CCrmDocumentDeal", "DOCUMENT_TYPE": "DEAL", "AUTO_EXECUTE": "0",
         "USER_ID": "1", "SYSTEM_CODE": "", "PARAMETERS": params},
        {"ID": "526", "NAME": "SMS-напоминание (лид)", "MODULE_ID": "crm",
         "ENTITY": "CCrmDocumentLead", "DOCUMENT_TYPE": "LEAD", "AUTO_EXECUTE": "0",
         "USER_ID": "1", "SYSTEM_CODE": "", "PARAMETERS": params},
    ]  # fmt: skip
