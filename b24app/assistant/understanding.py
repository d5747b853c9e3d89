"""What a client's message says: pure Python, no I/O (rules, Russian and English).

:func:`understand` reads one message relative to the portal's local "now" and returns an
:class:`Understanding`: the intents found (operator, complaint, sensitive topic, back,
confirm, cancel, greeting), the service (names and synonyms from the portal's script), a
desired day/time (:class:`When`), a phone number (E.164), a name, a button choice — each
with a confidence in 0..1. ``confidence`` is the best of them; 0 means nothing understood.

The optional model (:mod:`b24app.assistant.model`) sits behind the same result type and is
asked only for what the rules miss.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

# Intents that end the script: a person must take over.
HANDOFF_INTENTS = ("operator", "complaint", "sensitive")
INTENTS = HANDOFF_INTENTS + ("back", "confirm", "cancel", "greeting")


@dataclass(frozen=True)
class Service:
    """One service of the portal's script: ``code``, names per language, synonyms."""

    code: str
    names: tuple[str, ...]
    synonyms: tuple[str, ...] = ()
    duration: int = 60
    price: float | None = None

    @classmethod
    def from_settings(cls, item: dict[str, Any]) -> Service:
        name = item.get("name") or {}
        names = tuple(v for v in (name.values() if isinstance(name, dict) else [name]) if v)
        return cls(
            code=str(item["code"]),
            names=names or (str(item["code"]),),
            synonyms=tuple(str(s) for s in item.get("synonyms") or ()),
            duration=int(item.get("duration") or 60),
            price=item.get("price"),
        )

    def title(self, lang: str) -> str:
        return self.names[0 if lang == "ru" or len(self.names) < 2 else 1]


@dataclass(frozen=True)
class When:
    """A desired day and/or time; ``earliest``/``latest`` bound a window ("after 18")."""

    day: dt.date | None = None
    at: dt.time | None = None
    earliest: dt.time | None = None
    latest: dt.time | None = None

    @property
    def has_time(self) -> bool:
        return self.at is not None or self.earliest is not None or self.latest is not None

    def merged(self, newer: When) -> When:
        """``newer`` refines this one: a new day keeps the old time wish and vice versa."""
        if newer.has_time:
            return When(newer.day or self.day, newer.at, newer.earliest, newer.latest)
        return When(newer.day or self.day, self.at, self.earliest, self.latest)

    def as_dict(self) -> dict[str, str | None]:
        def fmt(value: Any) -> str | None:
            return value.isoformat(timespec="minutes") if isinstance(value, dt.time) else (
                value.isoformat() if value else None
            )  # fmt: skip

        return {k: fmt(getattr(self, k)) for k in ("day", "at", "earliest", "latest")}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> When | None:
        if not data:
            return None
        return cls(
            day=dt.date.fromisoformat(data["day"]) if data.get("day") else None,
            **{
                k: dt.time.fromisoformat(data[k]) if data.get(k) else None
                for k in ("at", "earliest", "latest")
            },
        )


@dataclass(frozen=True)
class Understanding:
    text: str
    intents: frozenset[str] = frozenset()
    service: str | None = None
    when: When | None = None
    phone: str | None = None
    name: str | None = None
    choice: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    source: str = "rules"

    @property
    def confidence(self) -> float:
        return max(self.scores.values(), default=0.0)

    def has(self, intent: str) -> bool:
        return intent in self.intents

    def as_dict(self) -> dict[str, Any]:
        return {
            "intents": sorted(self.intents),
            "service": self.service,
            "when": self.when.as_dict() if self.when else None,
            "phone": self.phone,
            "name": self.name,
            "choice": self.choice,
            "scores": {k: round(v, 2) for k, v in sorted(self.scores.items())},
            "confidence": round(self.confidence, 2),
            "source": self.source,
        }


# --- text helpers ---------------------------------------------------------------------------

_WORD = re.compile(r"[a-zа-я0-9]+", re.IGNORECASE)


def normalise(text: str) -> str:
    return text.lower().replace("ё", "е").strip()


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def _stem_match(token: str, keyword: str) -> bool:
    """``token`` is a form of ``keyword`` (Russian endings): same start, small difference."""
    if token == keyword:
        return True
    if len(keyword) < 4:
        return False
    stem = keyword[: max(4, len(keyword) - 2)]
    return token.startswith(stem) and len(token) - len(stem) <= 4


def _phrase_in(tokens: Sequence[str], phrase: str) -> bool:
    parts = words(phrase)
    if not parts:
        return False
    for i in range(len(tokens) - len(parts) + 1):
        if all(_stem_match(tokens[i + j], p) for j, p in enumerate(parts)):
            return True
    return False


def _any_phrase(tokens: Sequence[str], phrases: Iterable[str]) -> bool:
    return any(_phrase_in(tokens, p) for p in phrases)


# --- intents -------------------------------------------------------------------------------

_OPERATOR = ("оператор", "человек", "менеджер", "администратор", "админ", "живой",
             "сотрудник", "позовите", "соедините", "operator", "human", "person", "manager",
             "agent", "real person", "someone real", "staff")  # fmt: skip
_COMPLAINT = ("жалоба", "пожаловаться", "ужасно", "ужасный", "недоволен", "недовольна",
              "безобразие", "отвратительно", "хамство", "претензия", "верните деньги",
              "возврат денег", "испортили", "complaint", "complain", "terrible", "awful",
              "refund", "disappointed", "worst", "rude")  # fmt: skip
_SENSITIVE = ("аллергия", "аллергию", "беременна", "беременность", "противопоказания",
              "болит", "боль", "лечение", "диагноз", "лекарство", "таблетки", "воспаление",
              "инфекция", "сыпь", "ожог", "врач", "юрист", "суд", "иск", "закон",
              "адвокат", "allergy", "allergic", "pregnant", "contraindication",
              "contraindications", "diagnosis", "medication", "medicine", "pain", "rash",
              "infection", "doctor", "lawyer", "lawsuit", "legal", "sue", "court")  # fmt: skip
_BACK = ("назад", "вернуться", "вернись", "изменить", "поменять", "другая услуга",
         "другое время", "другой день", "не то", "back", "go back", "change", "another time",
         "another day", "different")  # fmt: skip
_CONFIRM_WORDS = {"да", "подтверждаю", "подтвердить", "верно", "ок", "ok", "okay", "хорошо",
                  "конечно", "согласен", "согласна", "записывайте", "отлично", "давайте",
                  "yes", "yep", "yeah", "confirm", "sure", "correct", "fine", "great"}  # fmt: skip
_CANCEL_WORDS = {"нет", "отмена", "отменить", "отмените", "передумал", "передумала",
                 "no", "nope", "cancel", "stop"}  # fmt: skip
_GREETING = ("привет", "здравствуйте", "добрый день", "добрый вечер", "доброе утро",
             "hello", "hi", "good morning", "good afternoon", "hey")  # fmt: skip


def find_intents(tokens: Sequence[str]) -> dict[str, float]:
    found: dict[str, float] = {}
    if _any_phrase(tokens, _OPERATOR):
        found["operator"] = 0.95
    if _any_phrase(tokens, _COMPLAINT):
        found["complaint"] = 0.9
    if _any_phrase(tokens, _SENSITIVE):
        found["sensitive"] = 0.9
    if _any_phrase(tokens, _BACK):
        found["back"] = 0.9
    if tokens and len(tokens) <= 4:
        if "не" not in tokens and any(t in _CONFIRM_WORDS for t in tokens):
            found["confirm"] = 0.95 if tokens[0] in _CONFIRM_WORDS else 0.8
        if any(t in _CANCEL_WORDS for t in tokens) or tokens[:2] == ["не", "надо"]:
            found["cancel"] = 0.9
            found.pop("confirm", None)
    if _any_phrase(tokens[:3], _GREETING):
        found["greeting"] = 0.9
    return found


# --- services ------------------------------------------------------------------------------


def find_service(tokens: Sequence[str], services: Sequence[Service]) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    for service in services:
        score = 0.0
        if any(_phrase_in(tokens, n) for n in service.names):
            score = 0.95
        elif any(_phrase_in(tokens, s) for s in service.synonyms):
            score = 0.85
        if score and (best is None or score > best[1]):
            best = (service.code, score)
    return best


# --- dates and times -----------------------------------------------------------------------

_WEEKDAYS = {
    0: ("понедельник", "пн", "monday", "mon"),
    1: ("вторник", "вт", "tuesday", "tue"),
    2: ("среду", "среда", "ср", "wednesday", "wed"),
    3: ("четверг", "чт", "thursday", "thu"),
    4: ("пятницу", "пятница", "пт", "friday", "fri"),
    5: ("субботу", "суббота", "сб", "saturday", "sat"),
    6: ("воскресенье", "вс", "sunday", "sun"),
}
_MONTHS = {
    1: ("январ", "january", "jan"), 2: ("феврал", "february", "feb"), 3: ("март", "march", "mar"),
    4: ("апрел", "april", "apr"), 5: ("мая", "май", "may"), 6: ("июн", "june", "jun"),
    7: ("июл", "july", "jul"), 8: ("август", "august", "aug"),
    9: ("сентябр", "september", "sep", "sept"), 10: ("октябр", "october", "oct"),
    11: ("ноябр", "november", "nov"), 12: ("декабр", "december", "dec"),
}  # fmt: skip
_PARTS = {
    "morning": (dt.time(9), dt.time(12)),
    "afternoon": (dt.time(12), dt.time(17)),
    "evening": (dt.time(17), dt.time(21)),
}
_PART_WORDS = {
    "утром": "morning", "утра": "morning", "morning": "morning", "днем": "afternoon",
    "дня": "afternoon", "afternoon": "afternoon", "обед": "afternoon", "обеда": "afternoon",
    "вечером": "evening", "вечера": "evening", "evening": "evening", "tonight": "evening",
}  # fmt: skip

_DATE_NUM = re.compile(r"(?<![\d:.])(\d{1,2})[./](\d{1,2})(?:[./](\d{2,4}))?(?![\d:])")
_DATE_WORD = re.compile(r"(?<!\d)(\d{1,2})\s+([a-zа-я]{3,})")
_DATE_WORD_EN = re.compile(r"\b([a-z]{3,})\s+(\d{1,2})(?:st|nd|rd|th)?\b")
_TIME_HM = re.compile(r"(?<![\d.])([01]?\d|2[0-3])[:.]([0-5]\d)(?!\d)\s*(am|pm)?")
_TIME_H = re.compile(
    r"(после|до|с|в|к|около|after|before|at|by|from|around)?\s*(?<![\d:.])"
    r"([01]?\d|2[0-3])(?![\d:./])\s*(am|pm|ч|часов|часа|час|h)?\s*(утра|вечера|дня|ночи)?"
)


def _month_of(word: str) -> int | None:
    """Russian stems match a prefix ("декабря"); English names and abbreviations exactly."""
    for month, stems in _MONTHS.items():
        if any(word == s if s.isascii() else word.startswith(s) for s in stems):
            return month
    return None


def _future_date(today: dt.date, day: int, month: int, year: int | None) -> dt.date | None:
    try:
        if year is not None:
            return dt.date(year if year > 99 else 2000 + year, month, day)
        candidate = dt.date(today.year, month, day)
    except ValueError:
        return None
    if candidate < today:
        try:
            candidate = dt.date(today.year + 1, month, day)
        except ValueError:
            return None
    return candidate


def _find_day(text: str, tokens: Sequence[str], today: dt.date) -> tuple[dt.date, float] | None:
    if "послезавтра" in tokens or _phrase_in(tokens, "day after tomorrow"):
        return today + dt.timedelta(days=2), 0.95
    if "завтра" in tokens or "tomorrow" in tokens:
        return today + dt.timedelta(days=1), 0.95
    if "сегодня" in tokens or "today" in tokens or "tonight" in tokens:
        return today, 0.95
    for match in _DATE_NUM.finditer(text):
        day, month = int(match.group(1)), int(match.group(2))
        year = int(match.group(3)) if match.group(3) else None
        if 1 <= month <= 12:
            found = _future_date(today, day, month, year)
            if found:
                return found, 0.9
    for match in _DATE_WORD.finditer(text):
        month_ = _month_of(match.group(2))
        if month_:
            found = _future_date(today, int(match.group(1)), month_, None)
            if found:
                return found, 0.9
    for match in _DATE_WORD_EN.finditer(text):
        month_ = _month_of(match.group(1))
        if month_:
            found = _future_date(today, int(match.group(2)), month_, None)
            if found:
                return found, 0.85
    for weekday, names in _WEEKDAYS.items():
        if any(n in tokens for n in names) or any(
            len(n) > 4 and any(_stem_match(t, n) for t in tokens) for n in names
        ):
            ahead = (weekday - today.weekday()) % 7 or 7
            if "следующ" in text or "next" in tokens:
                ahead = ahead if ahead > 0 else 7
            return today + dt.timedelta(days=ahead), 0.9
    return None


def _hour(hour: int, suffix: str | None, part: str | None) -> tuple[int, float]:
    """24-hour clock from an hour and its qualifiers; small bare hours mean the afternoon."""
    if suffix == "pm" or part in ("вечера", "дня"):
        return (hour + 12 if hour < 12 else hour), 0.9
    if suffix == "am" or part in ("утра",):
        return (0 if hour == 12 else hour), 0.9
    if part == "ночи":
        return hour % 12, 0.6
    if 1 <= hour <= 7:  # a salon: "в 5" is 17:00
        return hour + 12, 0.7
    return hour, 0.85


def _find_time(text: str, tokens: Sequence[str]) -> tuple[When, float] | None:
    text = _DATE_NUM.sub(
        lambda m: " " if 1 <= int(m.group(2)) <= 12 and not re.match(r"\s*(am|pm)", text[m.end():])
        else m.group(0), text)  # fmt: skip
    for match in _TIME_HM.finditer(text):
        hour, _ = _hour(int(match.group(1)), match.group(3), None)
        if match.group(3) is None:
            hour = int(match.group(1))
        prefix = text[max(0, match.start() - 7) : match.start()]
        at = dt.time(hour, int(match.group(2)))
        if re.search(r"(после|after|с|from)\s*$", prefix):
            return When(earliest=at), 0.9
        if re.search(r"(до|before|by)\s*$", prefix):
            return When(latest=at), 0.9
        return When(at=at), 0.95
    for match in _TIME_H.finditer(text):
        prep, raw, suffix, part = match.groups()
        if not prep and not suffix and not part:
            continue
        if suffix in ("ч", "часов", "часа", "час", "h"):
            suffix = None
        hour, score = _hour(int(raw), suffix, part)
        at = dt.time(hour % 24)
        if prep in ("после", "after", "с", "from"):
            return When(earliest=at), score
        if prep in ("до", "before", "by"):
            return When(latest=at), score
        return When(at=at), score
    for token in tokens:
        part_name = _PART_WORDS.get(token)
        if part_name:
            start, end = _PARTS[part_name]
            return When(earliest=start, latest=end), 0.8
    return None


def find_when(text: str, now: dt.datetime) -> tuple[When, float] | None:
    """The desired day/time in ``text``; ``now`` is the portal's local time."""
    norm = normalise(text)
    tokens = words(norm)
    day = _find_day(norm, tokens, now.date())
    time_ = _find_time(norm, tokens)
    if day is None and time_ is None:
        return None
    when = time_[0] if time_ else When()
    if day:
        when = replace(when, day=day[0])
    scores = [s for s in (day[1] if day else None, time_[1] if time_ else None) if s]
    return when, min(scores)


# --- phones and names ----------------------------------------------------------------------

_PHONE = re.compile(r"(?<![\w+])(\+?\d[\d\s().-]{8,20}\d)(?!\w)")


def find_phone(text: str) -> str | None:
    """An E.164 phone number (``+79123456789``) from the common ways people write one."""
    for match in _PHONE.finditer(text):
        raw = match.group(1)
        digits = re.sub(r"\D", "", raw)
        if raw.startswith("+"):
            if 10 <= len(digits) <= 15:
                return "+" + digits
            continue
        if len(digits) == 11 and digits[0] in "78":
            return "+7" + digits[1:]
        if len(digits) == 10 and digits[0] == "9":
            return "+7" + digits
        if 11 <= len(digits) <= 15 and not re.search(r"[./:]", raw):
            return "+" + digits
    return None


_NAME_INTRO = re.compile(
    r"(?:меня зовут|зовут|мое имя|моё имя|my name is|i am|i'm|this is|name:?|имя:?)"
    r"\s+([A-Za-zА-Яа-яЁё][A-Za-zА-Яа-яЁё-]{1,30}(?:\s+[A-ZА-ЯЁ][a-zа-яё-]{1,30})?)",
    re.IGNORECASE,
)
_NOT_NAMES = {"да", "нет", "ок", "хорошо", "yes", "no", "ok", "завтра", "сегодня", "tomorrow",
              "today", "спасибо", "thanks", "привет", "hello", "hi", "здравствуйте"}  # fmt: skip


def find_name(text: str, *, expected: bool) -> tuple[str, float] | None:
    """A client's name: after "меня зовут"/"my name is", or the bare reply when one is asked."""
    match = _NAME_INTRO.search(text)
    if match:
        name = match.group(1).strip()
        if normalise(name) not in _NOT_NAMES:
            return name[:1].upper() + name[1:], 0.9
    if expected:
        bare = re.sub(r"[+\d\s().,-]{7,}", " ", text)  # the phone may come in the same message
        parts = [p for p in re.split(r"[\s,]+", bare.strip()) if p]
        if 1 <= len(parts) <= 3 and all(re.fullmatch(r"[A-Za-zА-Яа-яЁё-]{2,30}", p) for p in parts):
            if normalise(parts[0]) not in _NOT_NAMES:
                return " ".join(p[:1].upper() + p[1:] for p in parts), 0.75
    return None


# --- the whole message ---------------------------------------------------------------------


def understand(
    text: str,
    *,
    now: dt.datetime,
    services: Sequence[Service] = (),
    expect: str | None = None,
    choices: Sequence[str] = (),
) -> Understanding:
    """Read one message. ``expect`` is the slot being asked for (``service``, ``when``,
    ``contact``, ``name``, ``slot``, ``confirm``): it makes a bare name acceptable; ``choices``
    are the button texts just offered (an exact or numbered reply picks one)."""
    text = (text or "").strip()[:2000]
    norm = normalise(text)
    tokens = words(norm)
    scores: dict[str, float] = {}
    intents = find_intents(tokens)
    scores.update(intents)
    result = Understanding(text=text)

    choice = None
    for i, option in enumerate(choices, 1):
        if norm == normalise(option) or norm in (str(i), f"{i}.", f"{i})"):
            choice = option
            scores["choice"] = 1.0
            break
    service = find_service(tokens, services)
    if service:
        scores["service"] = service[1]
    when = find_when(text, now) if choice is None else None
    if when:
        scores["when"] = when[1]
    phone = find_phone(text)
    if phone:
        scores["phone"] = 0.95
    name = find_name(text, expected=expect in ("contact", "name") and not intents)
    if name:
        scores["name"] = name[1]
    return replace(
        result,
        intents=frozenset(intents),
        service=service[0] if service else None,
        when=when[0] if when else None,
        phone=phone,
        name=name[0] if name else None,
        choice=choice,
        scores=scores,
    )
