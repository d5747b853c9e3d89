"""AI-lead rules (source patterns, UTM, markers; defaults) and the lead channel."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from b24app.leads.classify import channel_of
from b24app.leads.classify import classify
from b24app.leads.classify import lead_channel
from b24app.leads.classify import pattern_matches
from b24app.leads.snapshot import LeadSnapshot
from b24app.settings import DEFAULTS

RULES = DEFAULTS["ai_rules"]
BASE = LeadSnapshot(
    lead_id=1, title="Лид", status_id="NEW", status_semantic="P", assigned_by_id=1,
    source_id="CALL", source_description="", comments="", utm_source="", utm_medium="",
    utm_campaign="", utm_content="", utm_term="", opportunity=None, currency_id="RUB",
    created_at=None, modified_at=None, moved_at=None,
)  # fmt: skip


def lead(**changes: object) -> LeadSnapshot:
    return dataclasses.replace(BASE, **changes)


@pytest.mark.parametrize(
    ("source_id", "channel"),
    [
        ("1|OPENLINE", "openline"),
        ("2|TELEGRAM", "telegram"),
        ("12|telegrambot", "telegram"),
        ("3|WHATSAPPBYEDNA", "whatsapp"),
        ("4|FBINSTAGRAMDIRECT", "instagram"),
        ("5|VK", "vk"),
        ("6|AVITO", "avito"),
    ],
)
def test_default_rules_tag_chat_connectors(source_id: str, channel: str) -> None:
    """Out of the box, open-line chat connectors are AI-leads with their channel."""
    verdict = classify(lead(source_id=source_id), RULES)
    assert verdict.is_ai
    assert verdict.channel == channel
    assert verdict.reason.startswith("source_id:")


@pytest.mark.parametrize("source_id", ["CALL", "WEBFORM", "EMAIL", "ADVERTISING", "", "TELEGRAM_X"])
def test_default_rules_leave_other_sources_alone(source_id: str) -> None:
    """Calls, forms, e-mail and unknown sources without UTM/markers are not AI-leads."""
    assert not classify(lead(source_id=source_id), RULES).is_ai


def test_utm_source_rule_is_case_insensitive() -> None:
    """utm_source=AI_Bot matches the ai_bot default."""
    verdict = classify(lead(source_id="WEB", utm_source="AI_Bot"), RULES)
    assert verdict.is_ai and verdict.reason == "utm_source:ai_bot"
    assert verdict.channel == "other"


@pytest.mark.parametrize("field", ["source_description", "comments", "title"])
def test_markers_are_found_in_description_comments_title(field: str) -> None:
    """A marker anywhere in SOURCE_DESCRIPTION, COMMENTS or TITLE, any case."""
    verdict = classify(lead(**{field: "Запись через ии-АССИСТЕНТ салона"}), RULES)
    assert verdict.is_ai and verdict.reason == "marker:ИИ-ассистент"


def test_portal_rules_replace_the_defaults() -> None:
    """Custom rules: a custom source pattern matches, a default one no longer does."""
    rules = {"source_ids": ["BOT_*"], "utm_sources": [], "markers": []}
    assert classify(lead(source_id="bot_salon"), rules).is_ai
    assert not classify(lead(source_id="2|TELEGRAM"), rules).is_ai


def test_pattern_special_characters_are_literal() -> None:
    """Only * is a wildcard: | . [ are literal."""
    assert pattern_matches("*|VK", "10|vk")
    assert not pattern_matches("1.VK", "1|VK")
    assert pattern_matches("[AI]*", "[ai] bot")
    assert not pattern_matches("*|VK", "10|VKGROUP")


@pytest.mark.parametrize(
    ("source_id", "im", "channel"),
    [
        ("1|OPENLINE", (), "chat"),
        ("TELEGRAM", (), "chat"),
        ("CALL", (), "call"),
        ("CALLBACK", (), "call"),
        ("WEBFORM", (), "webform"),
        ("WEB", (), "webform"),
        ("EMAIL", (), "email"),
        ("ADVERTISING", (), "other"),
        ("OTHER", ("imol|livechat|1|67|21",), "chat"),
    ],
)
def test_lead_channel(source_id: str, im: tuple[str, ...], channel: str) -> None:
    """Channel decides the SLA policy: chat, call, webform, email, other."""
    assert lead_channel(lead(source_id=source_id, im_values=im)) == channel


@pytest.mark.parametrize(
    ("source_id", "channel"),
    [
        ("2|TELEGRAM", "chat"),
        ("5|WHATSAPP", "chat"),
        ("openline", "chat"),
        ("CALL", "call"),
        ("callback", "call"),
        ("WEBFORM", "webform"),
        ("EMAIL", "email"),
        ("RECOMMENDATION", "other"),
        ("", "other"),
    ],
)
def test_channel_of_source_id(source_id: str, channel: str) -> None:
    """channel_of: the source id alone decides (case-insensitive)."""
    assert channel_of(source_id) == channel


def test_pattern_matching_uses_no_regex_and_stays_correct(monkeypatch) -> None:
    """A ``.*`` regex backtracks exponentially on ``*a*a*…b`` (21 characters took ~42 s on a
    40-character source id, issue 10 item 5): the matcher must not use ``re`` at all."""
    from b24app.leads import classify as module

    class NoRegex:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"re.{name} used for a source pattern")

    monkeypatch.setattr(module, "re", NoRegex())
    hostile = "*a" * 10 + "*b"
    assert not pattern_matches(hostile, "a" * 40)
    assert pattern_matches(hostile, "a" * 40 + "b")
    assert pattern_matches("*A*A*", "xaxa")
    assert not pattern_matches("a*a", "a")
    assert pattern_matches("a*a", "aa")
    assert pattern_matches("*", "")
    assert pattern_matches("**|tg", "1|TG")


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet="ab*|", max_size=8),
    st.text(alphabet="abAB|", max_size=10),
)
def test_pattern_matching_agrees_with_fnmatch(pattern: str, value: str) -> None:
    """Same verdict as a regex translation on small inputs (where backtracking is cheap)."""
    import re

    regex = ".*".join(re.escape(p) for p in pattern.strip().split("*"))
    expected = re.fullmatch(regex, value.strip(), flags=re.IGNORECASE) is not None
    assert pattern_matches(pattern, value) == expected
