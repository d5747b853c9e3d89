"""The client's name for a reminder's ``{client_name}``, read when the appointment is created
or moved and stored on it (:attr:`~b24app.storage.models.Appointment.client_name`), so that
sending a reminder costs no request for it.

A person's name comes from a **contact** (``NAME`` + ``LAST_NAME``: the booking's client, or
the deal's ``CONTACT_ID``) or from the **lead** (its own ``NAME`` / ``LAST_NAME``). A deal has
no person name of its own: its ``TITLE`` ("Стрижка — Telegram") is never used as one — a
deal without a contact gives "" and the template's greeting is used instead.

Requests: for a booking the look-ups ride in the ``batch`` that reads the booking
(:func:`booking_commands`, chained on its client and deal link); elsewhere
:func:`fetch_names` reads any number of clients in one ``batch`` per 50 commands.
"""

from __future__ import annotations

from typing import Any

from b24app.bitrix.client import BatchResult
from b24app.bitrix.client import BitrixClient

PREFIX = "name_"


def person_name(row: Any) -> str:
    """``NAME LAST_NAME`` of a contact or lead (``crm.*.get`` upper-case fields, or the
    camelCase ``crm.item.get`` ones); "" when it has none."""
    if not isinstance(row, dict):
        return ""
    first = row.get("NAME") if "NAME" in row else row.get("name")
    last = row.get("LAST_NAME") if "LAST_NAME" in row else row.get("lastName")
    parts = [str(p).strip() for p in (first, last) if p and str(p).strip()]
    return " ".join(parts)[:255]


def booking_commands() -> dict[str, tuple[str, dict[str, Any]]]:
    """Commands to append to a booking's ``batch`` (after its ``clients`` and ``links``):
    the first client as a contact, and the linked deal's contact. Chained on the first rows
    only; :func:`booking_name` checks the ids, so a company listed first is never read as a
    contact."""
    return {
        PREFIX + "contact": ("crm.contact.get", {"ID": "$result[clients][bookingClient][0][id]"}),
        PREFIX + "deal": ("crm.deal.get", {"ID": "$result[links][externalData][0][value]"}),
        PREFIX + "deal_contact": ("crm.contact.get", {"ID": f"$result[{PREFIX}deal][CONTACT_ID]"}),
    }


def _same(row: Any, wanted: Any) -> bool:
    return (
        isinstance(row, dict)
        and wanted not in (None, "", 0, "0")
        and (str(row.get("ID")) == str(wanted))
    )


def booking_name(result: BatchResult, deal_id: int | None, contact_id: int | None) -> str | None:
    """The name from :func:`booking_commands`' answers; None when they could not tell (the
    contact was not the first client): the caller reads it with :func:`fetch_names`."""
    contact = result.results.get(PREFIX + "contact")
    if contact_id and _same(contact, contact_id):
        return person_name(contact)
    if contact_id:
        return None
    deal = result.results.get(PREFIX + "deal")
    if deal_id and isinstance(deal, dict) and _same(deal, deal_id):
        linked = result.results.get(PREFIX + "deal_contact")
        return person_name(linked) if _same(linked, deal.get("CONTACT_ID")) else ""
    return None if deal_id else ""


def fetch_names(client: BitrixClient, wanted: dict[str, tuple[str, int]]) -> dict[str, str]:
    """``{key: (kind, id)}`` with kind ``contact``, ``deal`` or ``lead`` → ``{key: name}``
    ("" when there is no person name), in one ``batch`` per 50 commands. A deal takes two
    chained commands (``crm.deal.get``, then ``crm.contact.get`` of its ``CONTACT_ID``);
    those pairs go first, so no pair straddles two requests (a chain works within one)."""
    pairs: dict[str, tuple[str, dict[str, Any]]] = {}
    singles: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, (kind, item_id) in wanted.items():
        if kind == "deal":
            pairs[f"d{key}"] = ("crm.deal.get", {"ID": item_id})
            pairs[f"n{key}"] = ("crm.contact.get", {"ID": f"$result[d{key}][CONTACT_ID]"})
        else:
            singles[f"n{key}"] = (f"crm.{kind}.get", {"ID": item_id})
    if not pairs and not singles:
        return {}
    result = client.batch({**pairs, **singles})
    names: dict[str, str] = {}
    for key, (kind, _item_id) in wanted.items():
        row = result.results.get(f"n{key}")
        if kind == "deal":
            deal = result.results.get(f"d{key}")
            ok = isinstance(deal, dict) and _same(row, deal.get("CONTACT_ID"))
            names[key] = person_name(row) if ok else ""
        else:
            names[key] = person_name(row)
    return names
