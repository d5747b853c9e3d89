"""An admin-picked business process as a channel: no REST method sends an SMS, so the portal's
own SMS / WhatsApp provider sends the text from a workflow action. ``bizproc.workflow.start``
is admin-only and works on paid, demo and NFR plans only; the app calls it with its stored
(installing admin's) token. The template's entity must match the document (a deal template on
a deal): ``DOCUMENT_ID`` = ``["crm", "CCrmDocumentDeal", "DEAL_<id>"]`` or the lead form."""

from __future__ import annotations

from typing import Any

from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import BitrixError
from b24app.reach import Delivery
from b24app.reach import error_code
from b24app.reach import is_transient

DOCUMENTS = {"DEAL": "CCrmDocumentDeal", "LEAD": "CCrmDocumentLead"}


def start_workflow(
    client: BitrixClient,
    template_id: int | None,
    document_type: str,
    entity_id: int | None,
    parameters: dict[str, Any],
) -> Delivery:
    """Start the template on the deal/lead with ``parameters``; ``detail`` = workflow id."""
    if not template_id:
        return Delivery(False, error="no_workflow_configured")
    if not entity_id:
        return Delivery(False, error=f"no_{document_type.lower()}")
    document = ["crm", DOCUMENTS[document_type], f"{document_type}_{entity_id}"]
    try:
        workflow_id = client.call(
            "bizproc.workflow.start",
            {"TEMPLATE_ID": template_id, "DOCUMENT_ID": document, "PARAMETERS": parameters},
        )
    except BitrixError as exc:
        if is_transient(exc):
            raise
        return Delivery(False, error=error_code(exc))
    return Delivery(True, detail=str(workflow_id)[:64])
