"""The demo's client pages: book a visit, read the chat, answer; values are escaped."""

from __future__ import annotations

import requests

from devportal import Portal
from tests.devportal.conftest import Sink


def test_book_then_answer_in_the_chat(installed: Portal, sink: Sink) -> None:
    base = installed.page_url("client")
    assert requests.get(base, timeout=10).status_code == 200
    booked = requests.post(base, data={"deal_id": "5", "minutes": "90", "name": "Стрижка"},
                           timeout=10, allow_redirects=False)  # fmt: skip
    assert booked.status_code == 303
    chat_url = installed.emu.url + booked.headers["Location"]
    (booking,) = installed.booking.bookings.values()
    assert installed.booking.external[booking["id"]][0]["value"] == "5"
    sent = requests.post(chat_url, data={"text": "<b>1</b>"}, timeout=10, allow_redirects=False)
    assert sent.status_code == 303
    page = requests.get(chat_url, timeout=10).text
    assert "&lt;b&gt;1&lt;/b&gt;" in page and "<b>1</b>" not in page
    chat_id = int(chat_url.rsplit("/", 1)[1])
    assert installed.chat_messages(chat_id)[0]["kind"] == "client"
    bad = requests.post(base, data={"deal_id": "x", "minutes": "1"}, timeout=10)
    assert bad.status_code == 400
    assert requests.get(installed.page_url("client/999"), timeout=10).status_code == 404
