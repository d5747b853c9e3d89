"""The emulator's ``booking.v1.waitlist.*`` and ``booking.createfromwaitlist`` in the shapes of
the docs (api-reference/booking/waitlist/ of bitrix24/b24restdocs; assumptions in
devportal/src/devportal/waitlist.py)."""

from __future__ import annotations

import datetime as dt
import time

from devportal import Portal
from tests.devportal.conftest import Rest


def test_waitlist_entries_clients_and_a_booking_made_from_one(
    rest: Rest, installed: Portal
) -> None:
    added = rest("booking.v1.waitlist.add", fields={"note": "после 18"}).json()["result"]
    entry = added["id"]
    assert rest("booking.v1.waitlist.get", id=entry).json()["result"] == {
        "waitList": {"id": entry, "note": "после 18"}
    }
    contact = installed.add_contact("Вера")
    clients = [{"id": contact, "type": {"module": "crm", "code": "CONTACT"}}]
    assert (
        rest("booking.v1.waitlist.client.set", waitListId=entry, clients=clients).json()["result"]
        is True
    )
    listed = rest("booking.v1.waitlist.client.list", waitListId=entry).json()["result"]
    assert listed == {"waitListClient": clients}
    today = dt.datetime.now(dt.UTC).date()
    window = {"from": f"{today:%d.%m.%Y}", "to": f"{today + dt.timedelta(days=1):%d.%m.%Y}"}
    found = rest("booking.v1.waitlist.list", filter={"createdWithin": window}).json()["result"]
    assert found == {"waitList": [{"id": entry, "note": "после 18"}]}
    earlier = {"from": "01.01.2020", "to": f"{today:%d.%m.%Y}"}  # "to" is exclusive
    assert rest("booking.v1.waitlist.list", filter={"createdWithin": earlier}).json()["result"] == {
        "waitList": []
    }
    start = int(time.time()) + 86400
    period = {"from": {"timestamp": start, "timezone": "UTC"},
              "to": {"timestamp": start + 3600, "timezone": "UTC"}}  # fmt: skip
    made = rest("booking.v1.booking.createfromwaitlist", waitListId=entry,
                fields={"resourceIds": [1], "datePeriod": period}).json()  # fmt: skip
    booking_id = made["result"]
    assert isinstance(booking_id, int)
    assert installed.booking.clients[booking_id] == clients  # the entry's clients come along
    assert rest("booking.v1.waitlist.get", id=entry).json()["error"] == 1040  # served
    # a second entry cannot take the same resource at the same time
    other = rest("booking.v1.waitlist.add", fields={"note": ""}).json()["result"]["id"]
    again = rest("booking.v1.booking.createfromwaitlist", waitListId=other,
                 fields={"resourceIds": [1], "datePeriod": period}).json()  # fmt: skip
    assert again["error"] == 1038
