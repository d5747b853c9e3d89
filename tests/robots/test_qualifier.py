"""The rule-based qualifier decides qualified / needs_human / junk from the chatbot's answers;
the LLM qualifier uses an OpenAI-compatible API and falls back to the rules on any error."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from b24app.config import Settings
from b24app.robots import qualifier as q
from b24app.robots.qualifier import Answers

CASES = [
    # goal, desired time, contact, expected verdict
    ("Хочу стрижку и окрашивание", "завтра в 15:00", "+7 916 123-45-67", q.QUALIFIED),
    ("Маникюр с покрытием гель-лак", "в субботу утром", "@anna_nails", q.QUALIFIED),
    ("Запись к стоматологу, болит зуб", "12.06 после 18", "8 (999) 765-43-21", q.QUALIFIED),
    ("Персональная тренировка, хочу похудеть", "вечером по будням", "ivan@mail.ru", q.QUALIFIED),
    ("Haircut and beard trim", "tomorrow at 3pm", "+44 20 7946 0958", q.QUALIFIED),
    ("Dental cleaning appointment", "Monday morning", "jane.doe@example.com", q.QUALIFIED),
    ("Personal training, weight loss", "any time", "https://t.me/coach_client", q.QUALIFIED),
    ("Хочу на массаж", "", "", q.NEEDS_HUMAN),
    ("Стрижка", "завтра", "не скажу", q.NEEDS_HUMAN),
    ("Сколько стоит у вас?", "не знаю", "+7 916 123-45-67", q.NEEDS_HUMAN),
    ("I have a question about prices", "", "bob@example.com", q.NEEDS_HUMAN),
    ("Заработок на криптовалюте, пишите", "", "@crypto_boss", q.JUNK),
    ("Best casino bonus www.win-big.xyz", "now", "spam@spam.com", q.JUNK),
    ("Продвижение сайтов в ТОП, SEO недорого", "", "+7 900 000-00-01", q.JUNK),
    ("asdfasdf", "qwerty", "123", q.JUNK),
    ("ааааааааа", "", "", q.JUNK),
    ("", "", "", q.JUNK),
]


@pytest.mark.parametrize(("goal", "when", "contact", "expected"), CASES)
def test_rule_verdicts(goal: str, when: str, contact: str, expected: str) -> None:
    """Each table row of Russian/English answers gets its expected verdict."""
    verdict = q.RuleQualifier().qualify(Answers(goal, when, contact))
    assert verdict.verdict == expected, verdict
    assert 0.0 <= verdict.confidence <= 1.0


@pytest.mark.parametrize(
    ("contact", "kind"),
    [
        ("+7 916 123-45-67", "phone"),
        ("89161234567", "phone"),
        ("a.b@clinic.ru", "email"),
        ("@salon_client", "telegram"),
        ("t.me/salon_client", "telegram"),
        ("@ab", None),
        ("1111111111", None),
        ("12345", None),
        ("mail@", None),
        ("позвоните мне", None),
    ],
)
def test_contact_kind(contact: str, kind: str | None) -> None:
    """Phones, e-mails and Telegram handles are recognised; fragments are not."""
    assert q.contact_kind(contact) == kind


def test_full_answers_are_more_confident_than_partial() -> None:
    """Confidence grows with what the client told: time and contact raise a qualified score."""
    full = q.RuleQualifier().qualify(Answers("стрижка", "завтра в 10", "+79161234567"))
    flexible = q.RuleQualifier().qualify(Answers("стрижка", "любое время", "+79161234567"))
    assert full.verdict == flexible.verdict == q.QUALIFIED
    assert full.confidence > flexible.confidence


def test_threshold_turns_unsure_verdicts_into_needs_human() -> None:
    """Below the portal's threshold a verdict becomes needs_human, keeping its confidence."""
    unsure = q.Verdict(q.QUALIFIED, 0.55)
    assert q.apply_threshold(unsure, 0.6).verdict == q.NEEDS_HUMAN
    assert q.apply_threshold(unsure, 0.6).confidence == 0.55
    assert q.apply_threshold(unsure, 0.5).verdict == q.QUALIFIED
    assert q.apply_threshold(q.Verdict(q.JUNK, 0.7), 0.9).verdict == q.NEEDS_HUMAN


def test_make_qualifier_is_rule_based_without_a_key() -> None:
    """No API key configured: the rule-based qualifier, no network."""
    assert isinstance(q.make_qualifier(Settings()), q.RuleQualifier)
    llm = q.make_qualifier(Settings(llm_api_key="sk-test", llm_api_url="https://llm.test/v1"))
    assert isinstance(llm, q.LlmQualifier)


LLM_URL = "https://llm.test/v1/chat/completions"


def _llm() -> q.LlmQualifier:
    return q.LlmQualifier("https://llm.test/v1", "sk-test", "test-model", timeout=2.0)


@responses.activate
def test_llm_verdict_is_used_and_contact_is_not_sent() -> None:
    """The model's JSON answer becomes the verdict; the raw contact never leaves the app."""
    responses.post(
        LLM_URL,
        json={"choices": [{"message": {"content": '{"verdict": "junk", "confidence": 0.91}'}}]},
        match=[responses.matchers.header_matcher({"Authorization": "Bearer sk-test"})],
    )
    verdict = _llm().qualify(Answers("стрижка", "завтра", "+7 916 123-45-67"))
    assert (verdict.verdict, verdict.confidence, verdict.source) == ("junk", 0.91, "llm")
    sent = json.loads(responses.calls[0].request.body)
    assert sent["model"] == "test-model"
    assert "916" not in json.dumps(sent)
    assert "phone" in sent["messages"][1]["content"]


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "json": {"error": "boom"}},
        {"body": requests.exceptions.ConnectTimeout()},
        {"json": {"choices": [{"message": {"content": "not json"}}]}},
        {"json": {"choices": [{"message": {"content": '{"verdict": "maybe", "confidence": 2}'}}]}},
        {"json": {"unexpected": True}},
    ],
)
@responses.activate
def test_llm_falls_back_to_rules(failure: dict) -> None:  # type: ignore[type-arg]
    """Any LLM failure (HTTP error, time-out, bad JSON, out-of-range answer) uses the rules."""
    responses.post(LLM_URL, **failure)
    answers = Answers("Хочу стрижку", "завтра в 15:00", "+7 916 123-45-67")
    verdict = _llm().qualify(answers)
    assert verdict.source == "rules"
    assert verdict == q.RuleQualifier().qualify(answers)
