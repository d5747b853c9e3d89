"""The one rule for "the chat's client wrote this message", on the documented answer of
``imopenlines.session.history.get`` (fixture: the docs' sample) and on the emulator's."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

from b24app.bitrix.chat_history import client_message
from b24app.bitrix.chat_history import parse_history
from tests.conftest import FIXTURES

SAMPLE = json.loads(
    (FIXTURES / "client-loop" / "imopenlines_session_history_get.response.json").read_text()
)["result"]


def with_client_message() -> dict[str, Any]:
    """The docs' sample plus a message of its guest 587 (the chat's connector user)."""
    data = copy.deepcopy(SAMPLE)
    data["message"]["85860"] = {**data["message"]["85851"], "id": "85860", "senderid": "587",
                                "text": "1", "date": "2026-03-11T13:20:00+01:00"}  # fmt: skip
    data["users"]["587"] = {**data["users"]["103"], "id": "587", "name": "John",
                            "connector": True, "bot": False}  # fmt: skip
    return data


def test_documented_sample_reads_chat_binding_and_authors() -> None:
    chat = parse_history(SAMPLE, 1763)
    assert chat is not None
    assert chat.entity_data2 == "LEAD|1205|COMPANY|0|CONTACT|0|DEAL|0"
    assert chat.entity_id == "livechat|22|1761|587" and chat.dialog_id == "chat1763"
    assert chat.members == {103, 587}
    assert client_message(chat, 85851) is None  # an employee's (connector: false)
    assert client_message(chat, 85833) is None  # a system message (senderid 0)
    assert client_message(chat, 1) is None  # not in the chat


def test_the_clients_message_counts_with_bitrix24s_text_and_date() -> None:
    chat = parse_history(with_client_message(), 1763)
    assert chat is not None
    found = client_message(chat, 85860)
    assert found is not None and found.text == "1" and found.author_id == 587
    assert found.author_name == "John"
    assert found.sent_at == dt.datetime(2026, 3, 11, 12, 20)  # naive UTC


def test_another_chat_a_bot_or_a_foreign_answer_does_not_count() -> None:
    assert parse_history(with_client_message(), 1777) is None  # asked about another chat
    assert parse_history({"chatId": 1763}, 1763) is None
    assert parse_history(None, 1763) is None
    not_lines = with_client_message()
    not_lines["chat"]["1763"]["entityType"] = "CRM"
    assert parse_history(not_lines, 1763) is None
    bot = with_client_message()
    bot["users"]["587"]["bot"] = True
    chat = parse_history(bot, 1763)
    assert chat is not None and client_message(chat, 85860) is None
    moved = with_client_message()
    moved["message"]["85860"]["chatid"] = "1777"  # a message of another chat
    chat = parse_history(moved, 1763)
    assert chat is not None and client_message(chat, 85860) is None
