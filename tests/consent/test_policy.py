"""The gate's rule (b24app/consent/policy.py), the stop words of the one reply classifier
(b24app/assistant/understanding.py) and the client's identifiers (b24app/consent/contact.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from b24app.assistant.understanding import classify_reply
from b24app.consent.contact import contact_of_chat
from b24app.consent.contact import normalise_phone
from b24app.consent.policy import decide
from b24app.storage.models import ConsentKind

T0 = dt.datetime(2026, 12, 1, 12, 0)
LATER = T0 + dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("found", "service", "advertising"),
    [
        ({}, True, False),  # nothing recorded: reminders yes, advertising no
        ({ConsentKind.ADVERTISING: T0}, True, True),
        ({ConsentKind.OPT_OUT: T0}, False, False),
        ({ConsentKind.ADVERTISING: T0, ConsentKind.OPT_OUT: LATER}, False, False),
        ({ConsentKind.OPT_OUT: T0, ConsentKind.ADVERTISING: LATER}, True, True),
        ({ConsentKind.OPT_OUT: T0, ConsentKind.ADVERTISING: T0}, False, False),  # a tie: stop
    ],
)
def test_service_and_advertising_rules(
    found: dict[str, dt.datetime], service: bool, advertising: bool
) -> None:
    """Reminders stop at an opt-out; advertising needs a consent newer than any opt-out."""
    assert decide(found, "service") is service
    assert decide(found, "advertising") is advertising


@pytest.mark.parametrize(
    "text",
    ["СТОП", "стоп", "Стоп!", "stop", "STOP please", "стоп пожалуйста", "отписаться",
     "Отпишите меня", "unsubscribe", "Unsubscribe me", "не пишите мне больше",
     "Больше не присылайте", "don't text me", "opt out"],
)  # fmt: skip
def test_stop_words_are_an_opt_out(text: str) -> None:
    """«СТОП» and its kin, in Russian and English, are read as an opt-out."""
    assert classify_reply(text) == "optout"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [("стоп, я перепутала время", None), ("1", "confirm"), ("2", "cancel"), ("нет", "cancel"),
     ("перенесите", "reschedule"), ("не смогу", "cancel")],
)  # fmt: skip
def test_other_replies_are_not_an_opt_out(text: str, verdict: str | None) -> None:
    """«стоп» inside a sentence is no opt-out; the reminder's answers keep their meaning."""
    assert classify_reply(text) == verdict


def test_identifiers_of_a_chat_and_a_phone() -> None:
    """The chat's CRM contact (entityData2), the chat and its author; phones in E.164."""
    client = contact_of_chat("LEAD|4|COMPANY|0|CONTACT|5|DEAL|7", 1777, 599)
    assert (client.contact_id, client.chat_id, client.chat_user_id) == (5, 1777, 599)
    assert contact_of_chat("LEAD|4|COMPANY|0|CONTACT|0|DEAL|0", 1, None).contact_id is None
    assert normalise_phone("8 (916) 123-45-67") == "+79161234567"
    assert normalise_phone("12") is None
