"""``crm.contact.get`` / ``crm.contact.add``: the client's name for reminders (a booking's
client, a deal's ``CONTACT_ID``). Rows in the documented ``crm.contact.get`` format (every
value a string, multifields as lists; :func:`devportal.contacts.add_contact`); a missing
contact answers like ``crm.deal.get``: HTTP 400, ``error`` "", "Not found"."""

from __future__ import annotations

from typing import Any

from devportal import contacts
from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import Ctx
from devportal.rest import method


def _contact_id(raw: Any) -> int:
    try:
        value = int(str(raw))
    except (TypeError, ValueError):
        raise RestError(400, "", "ID is not defined or invalid") from None
    if value <= 0:
        raise RestError(400, "", "ID is not defined or invalid")
    return value


@method("crm.contact.get")
def contact_get(ctx: Ctx) -> dict[str, Any]:
    row = ctx.portal.crm.contacts.get(_contact_id(ctx.param("id", "ID")))
    if row is None:
        raise RestError(400, "", "Not found")
    return dict(row)


@method("crm.contact.add")
def contact_add(ctx: Ctx) -> int:
    return contacts.add_contact(
        ctx.portal, as_dict(ctx.param("fields", "FIELDS")), ctx.user_id, None
    )
