"""Lead qualification from the three answers a chatbot collects: goal/service, desired time,
contact. Pure domain code: no Flask, no RQ, no database.

:class:`RuleQualifier` works on its own (keywords of salons, clinics and trainers in Russian
and English, a readable time, a valid phone/e-mail/Telegram contact, spam and keyboard-mash
detection). :class:`LlmQualifier` asks an OpenAI-compatible ``/chat/completions`` API behind
the same :class:`Qualifier` interface and falls back to the rules on any error; it is used only
when ``Settings.llm_api_key`` is set (:func:`make_qualifier`).

Scoring (rule-based): service 0.40 (a known service word 1.0, other meaningful text 0.4),
time 0.25 (a date/day/hour 1.0, "any time" 0.5), contact 0.35 (valid phone, e-mail or
Telegram 1.0). ``qualified`` needs a known service, a valid contact and a score of at least
0.75; confidence is the score. ``junk`` is spam, or nothing meaningful in any answer.
Everything else is ``needs_human`` with confidence ``1 - score`` (how sure we are a person must
look). The caller compares the confidence with the portal's threshold.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from typing import Protocol

import requests

from b24app.config import Settings

log = logging.getLogger(__name__)

QUALIFIED = "qualified"
NEEDS_HUMAN = "needs_human"
JUNK = "junk"
VERDICTS = (QUALIFIED, NEEDS_HUMAN, JUNK)


@dataclass(frozen=True)
class Answers:
    goal: str = ""
    desired_time: str = ""
    contact: str = ""


@dataclass(frozen=True)
class Verdict:
    verdict: str
    confidence: float
    reasons: tuple[str, ...] = ()
    source: str = "rules"


class Qualifier(Protocol):
    def qualify(self, answers: Answers) -> Verdict: ...


# Word stems (lower case, ё -> е) matched at the start of a word.
SERVICE_STEMS = (
    # salon / barber / beauty
    "стриж", "подстри", "окрашив", "покрас", "мелиров", "колорир", "тониров", "укладк",
    "маникюр", "педикюр", "ногт", "гель-лак", "гельлак", "шеллак", "наращ", "бров", "ресниц",
    "ламинир", "депиляц", "эпиляц", "шугаринг", "макияж", "визаж", "барбер", "бород", "бритье",
    "массаж", "спа", "обертыв", "пилинг", "чистк", "косметолог", "уход", "кератин", "ботокс",
    "haircut", "hair", "cut", "trim", "colou", "color", "highlight", "balayage", "blowout",
    "manicure", "pedicure", "nail", "gel", "lash", "brow", "wax", "makeup", "barber", "beard",
    "shave", "massage", "spa", "facial", "peel", "keratin", "botox",
    # clinic / dentist / doctor
    "стоматолог", "зуб", "пломб", "имплант", "брекет", "отбелив", "кариес", "врач", "доктор",
    "прием", "консультац", "осмотр", "анализ", "узи", "мрт", "терапевт", "гинеколог",
    "дерматолог", "невролог", "ортопед", "офтальмолог", "окулист", "лор", "педиатр", "уролог",
    "кардиолог", "эндокринолог", "прививк", "вакцин", "справк", "диагност", "лечени", "болит",
    "dentist", "dental", "tooth", "teeth", "filling", "implant", "brace", "whiten", "cleaning",
    "doctor", "physician", "appointment", "consult", "checkup", "check-up", "exam",
    "ultrasound", "mri", "blood test", "therap", "dermatolog", "vaccin", "treatment", "pain",
    # trainer / fitness
    "тренировк", "трениров", "тренер", "фитнес", "йог", "пилатес", "растяжк", "стретчинг",
    "похуд", "сбросить", "набор массы", "набрать", "функциональн", "кроссфит", "бокс",
    "плавани", "зал", "абонемент", "персональн",
    "training", "trainer", "workout", "fitness", "yoga", "pilates", "stretch", "weight loss",
    "lose weight", "gym", "crossfit", "boxing", "swim", "personal", "coach", "membership",
)  # fmt: skip
SPAM_STEMS = (
    "казино", "casino", "ставк", "betting", "bet365", "крипт", "crypto", "bitcoin", "биткоин",
    "форекс", "forex", "заработ", "earn money", "make money", "пассивный доход", "инвестиц",
    "investment", "seo", "продвижение сайт", "раскрутк", "website promotion", "backlink",
    "кредит", "займ", "loan", "viagra", "виагр", "porn", "порно", "xxx", "sex", "эротик",
    "рассылк", "база клиентов", "lottery", "лотере", "выигрыш", "prize", "click here",
)  # fmt: skip
MASH_SEQUENCES = ("qwert", "asdf", "zxcv", "йцук", "фыва", "ячсм", "hjkl", "1234")
URL = re.compile(r"(https?://|www\.|\b[a-z0-9-]+\.(?:com|ru|net|org|info|xyz|top|biz)\b)", re.I)
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
TELEGRAM = re.compile(
    r"^(?:@|(?:https?://)?t(?:elegram)?\.me/)([A-Za-z][A-Za-z0-9_]{4,31})$", re.IGNORECASE
)
TIME_OF_DAY = re.compile(
    r"(\b([01]?\d|2[0-3])[:.][0-5]\d\b|\b(в|к|с|после|до|at|by|after|before)\s*([01]?\d|2[0-3])"
    r"(\s*(ч|час|часа|часов|am|pm|h)\b|\b)|\b([1-9]|1[0-2])\s*(am|pm)\b)",
    re.IGNORECASE,
)
DATE = re.compile(
    r"(\b(0?[1-9]|[12]\d|3[01])[./](0?[1-9]|1[0-2])([./](\d{2}|\d{4}))?\b|"
    r"\b(0?[1-9]|[12]\d|3[01])\s+(янв|фев|мар|апр|ма[яй]|июн|июл|авг|сен|окт|ноя|дек)|"
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b|"
    r"\b\d{1,2}(st|nd|rd|th)?\s+(of\s+)?(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))",
    re.IGNORECASE,
)
TIME_WORDS = (
    "сегодня", "завтра", "послезавтра", "понедельник", "вторник", "сред", "четверг", "пятниц",
    "суббот", "воскресень", "выходн", "будн", "утр", "днем", "днём", "обед", "вечер",
    "на неделе", "следующей неделе", "через час", "через неделю", "через",
    "today", "tonight", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "weekend", "weekday", "morning", "afternoon", "evening", "noon",
    "next week", "this week", "in an hour", "asap", "как можно скорее", "побыстрее",
)  # fmt: skip
FLEXIBLE_TIME = ("любое", "любой", "когда удобно", "не важно", "неважно", "any time", "anytime",
                 "whenever", "flexible", "не знаю", "don't know", "dont know")  # fmt: skip
VOWELS = set("aeiouyаеёиоуыэюя")
WORD = re.compile(r"[a-zа-яё]+", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())


def _has_stem(text: str, stems: tuple[str, ...]) -> bool:
    return any(re.search(r"(?<![a-zа-я])" + re.escape(stem), text) for stem in stems)


def is_gibberish(text: str) -> bool:
    """Keyboard mash, one repeated character, no letters, or words without vowels."""
    norm = _norm(text)
    if not norm:
        return True
    words = WORD.findall(norm)
    if not words:
        return True
    if any(seq in norm.replace(" ", "") for seq in MASH_SEQUENCES):
        return True
    if re.search(r"(.)\1{4,}", norm):
        return True
    letters = "".join(words)
    if len(letters) >= 6:
        vowel_share = sum(ch in VOWELS for ch in letters) / len(letters)
        if vowel_share < 0.15 or vowel_share > 0.8:
            return True
    return False


def is_spam(answers: Answers) -> bool:
    """Advertising, gambling, crypto, adult content or links where a service should be."""
    text = _norm(f"{answers.goal} {answers.desired_time}")
    if _has_stem(text, SPAM_STEMS):
        return True
    return bool(URL.search(text))


def contact_kind(contact: str) -> str | None:
    """``phone``, ``email`` or ``telegram`` when ``contact`` is a valid one, else ``None``."""
    text = contact.strip()
    if not text:
        return None
    if EMAIL.match(text):
        return "email"
    if TELEGRAM.match(text):
        return "telegram"
    if re.fullmatch(r"[+\d\s().-]{7,25}", text):
        digits = re.sub(r"\D", "", text)
        # 10-15 digits (E.164 allows 15), and not a run like 0000000000 or 1212121212.
        if 10 <= len(digits) <= 15 and len(set(digits)) > 2:
            return "phone"
    return None


def time_score(desired_time: str) -> float:
    """1.0 for a day, date or hour; 0.5 for "any time"; 0 otherwise."""
    text = _norm(desired_time)
    if not text:
        return 0.0
    if TIME_OF_DAY.search(text) or DATE.search(text) or _has_stem(text, TIME_WORDS):
        return 1.0
    if any(word in text for word in FLEXIBLE_TIME):
        return 0.5
    return 0.0


def service_score(goal: str) -> float:
    """1.0 for a known service word; 0.4 for other meaningful text; 0 for nothing/gibberish."""
    text = _norm(goal)
    if not text or is_gibberish(text):
        return 0.0
    if _has_stem(text, SERVICE_STEMS):
        return 1.0
    return 0.4 if len(WORD.findall(text)) >= 2 else 0.0


class RuleQualifier:
    """The rule-based qualifier (see the module docstring for the scoring)."""

    def qualify(self, answers: Answers) -> Verdict:
        if is_spam(answers):
            return Verdict(JUNK, 0.95, ("spam",))
        service = service_score(answers.goal)
        when = time_score(answers.desired_time)
        contact = contact_kind(answers.contact)
        reasons = (
            f"service={service:.1f}",
            f"time={when:.1f}",
            f"contact={contact or 'none'}",
        )
        if (
            service == 0
            and when == 0
            and contact is None
            and is_gibberish(f"{answers.goal} {answers.desired_time} {answers.contact}")
        ):
            return Verdict(JUNK, 0.85, ("gibberish", *reasons))
        if service == 0 and when == 0 and contact is None:
            return Verdict(JUNK, 0.7, ("nothing useful", *reasons))
        score = round(0.40 * service + 0.25 * when + 0.35 * (1.0 if contact else 0.0), 2)
        if service == 1.0 and contact is not None and score >= 0.75:
            return Verdict(QUALIFIED, score, reasons)
        return Verdict(NEEDS_HUMAN, round(max(0.5, 1.0 - score), 2), reasons)


SYSTEM_PROMPT = (
    "You qualify leads for a beauty salon, clinic or personal trainer from a chatbot's three "
    'answers. Reply with JSON only: {"verdict": "qualified"|"needs_human"|"junk", '
    '"confidence": 0..1}. qualified = a real service request with a usable contact; junk = '
    "spam, advertising or nonsense; needs_human = anything unclear."
)


def ask_json(
    session: requests.Session,
    url: str,
    api_key: str,
    model: str,
    system: str,
    user: str,
    timeout: float,
) -> Any:
    """One OpenAI-compatible ``/chat/completions`` call answering a JSON object (parsed).

    :raise Exception: any transport, HTTP or parsing failure (callers fall back to rules).
    """
    response = session.post(
        url,
        json={
            "model": model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
        },
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=timeout,
    )
    response.raise_for_status()
    return json.loads(response.json()["choices"][0]["message"]["content"])


@dataclass(frozen=True)
class ChatModel:
    """An OpenAI-compatible ``/chat/completions`` endpoint, asked for JSON (:func:`ask_json`)."""

    url: str
    api_key: str
    model: str
    timeout: float
    session: requests.Session

    @classmethod
    def at(
        cls, api_url: str, api_key: str, model: str, timeout: float,
        session: requests.Session | None = None,
    ) -> ChatModel:  # fmt: skip
        """The endpoint under ``api_url`` (the OpenAI API when empty)."""
        url = (api_url or "https://api.openai.com/v1").rstrip("/") + "/chat/completions"
        return cls(url, api_key, model, timeout, session or requests.Session())

    def ask(self, system: str, user: str) -> Any:
        """:func:`ask_json` on this endpoint."""
        return ask_json(self.session, self.url, self.api_key, self.model, system, user,
                        self.timeout)  # fmt: skip


class LlmQualifier:
    """An OpenAI-compatible chat model behind :class:`Qualifier`; the rules on any error.

    The contact itself is never sent: only what kind of contact it is (privacy: the model is a
    third party).
    """

    def __init__(
        self,
        api_url: str,
        api_key: str,
        model: str,
        *,
        timeout: float = 10.0,
        fallback: Qualifier | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.chat = ChatModel.at(api_url, api_key, model, timeout, session)
        self.fallback: Qualifier = fallback or RuleQualifier()

    def qualify(self, answers: Answers) -> Verdict:
        try:
            return self._ask(answers)
        except Exception as exc:  # any failure of a third party must not stop qualification
            log.warning("LLM qualifier failed, using the rules: %s", type(exc).__name__)
            return self.fallback.qualify(answers)

    def _ask(self, answers: Answers) -> Verdict:
        user = json.dumps(
            {
                "goal": answers.goal[:1000],
                "desired_time": answers.desired_time[:200],
                "contact": contact_kind(answers.contact) or "missing or invalid",
            },
            ensure_ascii=False,
        )
        data: Any = self.chat.ask(SYSTEM_PROMPT, user)
        verdict = data["verdict"]
        confidence = float(data["confidence"])
        if verdict not in VERDICTS or not 0.0 <= confidence <= 1.0:
            raise ValueError("answer out of range")
        return Verdict(verdict, round(confidence, 2), ("llm",), source="llm")


def make_qualifier(settings: Settings, session: requests.Session | None = None) -> Qualifier:
    """The LLM qualifier when an API key is configured, else the rule-based one; ``session``:
    the worker's shared HTTP session (one TLS connection to the model's API, not one per job)."""
    if settings.llm_api_key:
        return LlmQualifier(settings.llm_api_url, settings.llm_api_key, settings.llm_model,
                            session=session)  # fmt: skip
    return RuleQualifier()


def apply_threshold(verdict: Verdict, threshold: float) -> Verdict:
    """Below ``threshold`` a qualified or junk verdict becomes ``needs_human`` (a manager
    decides); the confidence is kept so the workflow can see how unsure we were."""
    if verdict.verdict != NEEDS_HUMAN and verdict.confidence < threshold:
        return Verdict(NEEDS_HUMAN, verdict.confidence, (*verdict.reasons, "below threshold"),
                       verdict.source)  # fmt: skip
    return verdict
