"""What a client's message says: pure Python, no I/O (Russian and English).

:func:`understand` reads one message relative to the portal's local "now" and returns an
:class:`Understanding`: the intents found (operator, complaint, sensitive topic, back,
confirm, cancel, reschedule, greeting), the safety ``topic`` behind a hand-off (medical,
legal, complaint, refund), the service (names and synonyms from the portal's script), a
desired day/time (:class:`When`), a phone number (E.164), a name, a button choice — each
with a confidence in 0..1. ``confidence`` is the best of them; 0 means nothing understood.
A bare hour that may be morning or evening («в 8») gives no time but ``ambiguous_hour``:
the dialog asks instead of guessing (a wrong time is worse than none).

The libraries (each measured on ``bench/nlu_corpus.jsonl`` with ``bench/nlu.py``): razdel
splits tokens, pymorphy3 gives lemmas (so «больше» is not «боль», «перенесите» is
«перенести») and the Name/Surn tags behind names, rapidfuzz checks typos of service words
(«педекюр»), natasha's NER finds a name inside a longer message, phonenumbers reads and
validates phones (region RU). Hand-written: the day/time grammar (relative days, word
numbers, «полшестого», ranges, «с четверга на пятницу») and the vocabularies. The models are
loaded once per process on first use (:func:`warm_up` loads them up front).

The optional model (:mod:`b24app.assistant.model`) sits behind the same result type and is
asked only for what the rules miss.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

import phonenumbers
import razdel
from rapidfuzz.distance import Levenshtein

# Intents that end the script: a person must take over.
HANDOFF_INTENTS = ("operator", "complaint", "sensitive")
# What the optional model may add. Not "optout": only the rules (classify_reply) read a
# «СТОП», so a model's guess never silences a client (b24app/consent).
INTENTS = HANDOFF_INTENTS + ("back", "confirm", "cancel", "reschedule", "greeting")
TOPICS = ("medical", "legal", "complaint", "refund")
# Which intent a safety topic raises (both hand off).
TOPIC_INTENT = {"medical": "sensitive", "legal": "sensitive", "complaint": "complaint",
                "refund": "complaint"}  # fmt: skip
MAX_TEXT = 2000
# The scores that answer the slot a dialog asks for (``expect``).
ANSWERING_SCORES: dict[str, tuple[str, ...]] = {
    "service": ("service",),
    "when": ("when",),
    "contact": ("phone",),
    "name": ("name",),
    "slot": ("choice", "when"),
    "confirm": ("confirm", "cancel"),
}


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
    topic: str | None = None  # the safety topic behind a complaint/sensitive intent
    ambiguous_hour: int | None = None  # «в 8»: 8:00 or 20:00, ask

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
            "topic": self.topic,
            "ambiguous_hour": self.ambiguous_hour,
            "scores": {k: round(v, 2) for k, v in sorted(self.scores.items())},
            "confidence": round(self.confidence, 2),
            "source": self.source,
        }


# --- the language models: loaded once per process, on first use -----------------------------


@functools.cache
def _morph() -> Any:
    import pymorphy3  # a 15 MB dictionary: loaded on first use, not at import

    return pymorphy3.MorphAnalyzer()


@functools.cache
def _ner() -> tuple[Any, Any]:
    from natasha import NewsEmbedding  # numpy + 30 MB of embeddings: on first use only
    from natasha import NewsNERTagger
    from natasha import Segmenter

    return Segmenter(), NewsNERTagger(NewsEmbedding())


def warm_up(*, ner: bool = True) -> None:
    """Load the dictionaries (and the NER model) now, not on a client's first message.

    The worker loads pymorphy3's dictionaries at start (~0.1 s, ~15 MB; a forked work-horse
    inherits them); the NER model (~0.5 s, ~185 MB with numpy) stays lazy: it is asked only
    for a capitalised word that is both a name and a common noun («Вера», «Роза»)."""
    _morph()
    if ner:
        _ner()
    understand("Анна, завтра в 10 на маникюр", now=dt.datetime(2026, 1, 1), expect="contact")


@functools.lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """The dictionary form of a lower-case word (``ё`` → ``е``); other scripts unchanged."""
    if not re.search("[а-я]", word):
        return word
    return str(_morph().parse(word)[0].normal_form).replace("ё", "е")


@functools.lru_cache(maxsize=50_000)
def _name_tags(word: str) -> frozenset[str]:
    """``Name``/``Surn``/``Patr`` when one of the word's likely parses has it."""
    parses = _morph().parse(word.lower())
    return frozenset(t for p in parses[:3] if p.score >= 0.1 for t in ("Name", "Surn", "Patr")
                     if t in p.tag)  # fmt: skip


def normalise(text: str) -> str:
    return text.lower().replace("ё", "е").strip()


_PUNCT = re.compile(r"^[^\w+👍👎✅❌👌🆗🚫]+$")


def words(text: str) -> list[str]:
    """Lower-case tokens (razdel), punctuation dropped; «+» and emoji kept (they answer)."""
    return [t.text for t in razdel.tokenize(normalise(text)) if not _PUNCT.match(t.text)]


# --- a vocabulary of phrases, matched on lemmas ----------------------------------------------

_VOWEL_END = re.compile(r"[аеиоуыьйяю]+$")


def _stem(key: str) -> str:
    return _VOWEL_END.sub("", key)


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class Lexicon:
    """Phrases (one or more words) → a label, each with a score; matched on lemmas.

    ``fuzzy`` also lets a word match with one typo («педекюр») or a diminutive suffix
    («маникюрчик», «ноготочки»). The index is built once: every key, its stem and its
    one-letter deletions map to the phrases they start, so matching a message costs the
    same with 10 phrases or 40,000 (only the words of the message are looked up).
    """

    def __init__(self, entries: Iterable[tuple[str, str, float]], *, fuzzy: bool = False):
        self.fuzzy = fuzzy
        self.phrases: dict[str, list[tuple[tuple[str, ...], str, float]]] = {}
        self.stems: dict[str, set[str]] = {}
        self.deletes: dict[str, set[str]] = {}
        for phrase, label, score in entries:
            keys = tuple(lemma(w) for w in words(phrase))
            if not keys:
                continue
            # one-word phrases by their word, longer ones by their first two words: a message
            # word looks at the phrases that can match there, not at every phrase it starts
            first = keys[0] if len(keys) == 1 else keys[0] + " " + keys[1]
            self.phrases.setdefault(first, []).append((keys, label, score))
            if fuzzy:
                for key in keys:
                    stem = _stem(key)
                    if len(stem) >= 4:
                        self.stems.setdefault(stem, set()).add(key)
                    if len(key) >= 5:
                        for d in _deletes(key) | {key}:
                            self.deletes.setdefault(d, set()).add(key)

    def _keys(self, token: str) -> set[str]:
        """The vocabulary keys a message token stands for."""
        base = lemma(token)
        found = {token, base}
        if not self.fuzzy or len(base) < 4:
            return found
        for n in range(max(4, len(base) - 5), len(base) + 1):  # a diminutive's longer tail
            found |= self.stems.get(base[:n], set())
        if len(base) >= 5:
            for d in _deletes(base) | {base}:
                for key in self.deletes.get(d, ()):
                    if Levenshtein.distance(base, key, score_cutoff=1) <= 1:
                        found.add(key)
        return found

    def find(self, tokens: Sequence[str], limit: int | None = None) -> list[tuple[str, float, int]]:
        """Every label found: (label, score, words matched), longest phrase first."""
        keys = [self._keys(t) for t in tokens]
        found: list[tuple[str, float, int]] = []
        starts = range(len(tokens) if limit is None else min(limit, len(tokens)))
        for i in starts:
            firsts = set(keys[i])
            for j in range(i + 1, min(i + 4, len(keys))):  # a second word up to two words on
                firsts |= {f"{a} {b}" for a in keys[i] for b in keys[j]}
            for first in firsts:
                for phrase, label, score in self.phrases.get(first, ()):
                    if self._rest(keys, i + 1, phrase[1:]):
                        fuzzy = not (phrase[0] == tokens[i] or phrase[0] == lemma(tokens[i]))
                        found.append((label, score - (0.05 if fuzzy else 0), len(phrase)))
        found.sort(key=lambda f: (-f[2], -f[1]))
        return found

    @staticmethod
    def _rest(keys: list[set[str]], start: int, rest: tuple[str, ...]) -> bool:
        """``rest`` follows from ``start`` in order, each at most two words further on."""
        pos = start
        for key in rest:
            for j in range(pos, min(pos + 3, len(keys))):
                if key in keys[j]:
                    pos = j + 1
                    break
            else:
                return False
        return True


# --- intents and safety topics ---------------------------------------------------------------

_OPERATOR = ("оператор", "человек", "менеджер", "администратор", "админ", "живой",
             "сотрудник", "позвать", "соединить", "поговорить", "operator", "talk to", "speak to", "human", "person", "manager",
             "agent", "real person", "someone real", "staff")  # fmt: skip
_BACK = ("назад", "вернуться", "вернуть меня", "вернись", "изменить", "поменять",
         "другой услуга", "другой время", "другой день", "не то", "back", "go back", "change",
         "another time", "another day", "different")  # fmt: skip
_GREETING = ("привет", "здравствуйте", "здравствуй", "добрый день", "добрый вечер",
             "доброе утро", "hello", "hi", "good morning", "good afternoon", "good evening",
             "hey")  # fmt: skip

# Safety topics: a message naming one hands off at once. Per business kind, because a clinic
# books «анализ крови» and «лечить зуб» while a salon must hand those over.
_MEDICAL_COMMON = (
    "беременность", "беременный", "беременна", "кормить грудью", "грудной вскармливание",
    "лактация", "гв", "грибок", "микоз", "псориаз", "варикоз", "давление", "гипертония",
    "антибиотик", "аллергия", "аллергический", "противопоказание", "диабет", "эпилепсия",
    "онкология", "химиотерапия", "грыжа", "операция", "температура", "болеть", "боль",
    "воспаление", "воспалиться", "инфекция", "сыпь", "ожог", "отек", "кровотечение",
    "лекарство", "таблетка", "диагноз", "кружиться голова", "головокружение", "тошнота",
    "обморок", "dizzy", "nausea",
    "pregnant", "pregnancy", "breastfeeding", "breast feeding", "nursing", "fungus",
    "fungal", "psoriasis", "varicose", "blood pressure", "antibiotic", "antibiotics",
    "allergy", "allergic", "contraindication", "contraindications", "diabetes", "pain",
    "rash", "infection", "inflammation", "medication", "medicine", "diagnosis", "surgery",
    "hernia", "burn",
)  # fmt: skip
_LEGAL = ("суд", "судиться", "юрист", "адвокат", "иск", "роспотребнадзор", "прокуратура",
          "полиция", "закон о защите прав потребителей", "lawyer", "lawsuit", "sue", "court",
          "legal", "attorney")  # fmt: skip
_COMPLAINT = ("жалоба", "пожаловаться", "жаловаться", "ужасно", "ужасный", "недовольный",
              "безобразие", "отвратительно", "отвратительный", "хамство", "хамить", "нахамить",
              "претензия", "испортить", "возмутительно", "возмутительный", "complaint",
              "complain", "terrible", "awful", "disappointed", "worst", "rude")  # fmt: skip
_REFUND = ("вернуть деньги", "возврат деньги", "возврат средство", "вернуть оплата",
           "вернуть предоплата", "компенсация", "refund", "money back", "compensation")  # fmt: skip
DEFAULT_SAFETY: dict[str, dict[str, tuple[str, ...]]] = {
    "salon": {"medical": _MEDICAL_COMMON + ("лечение", "лечить", "врач", "рана", "порезать",
                                          "порез", "вросший"),
              "legal": _LEGAL, "complaint": _COMPLAINT, "refund": _REFUND},
    "clinic": {"medical": tuple(w for w in _MEDICAL_COMMON if w not in ("операция",))
               + ("что делать", "неправильный диагноз", "результат анализ"),
               "legal": _LEGAL + ("справка для суд",), "complaint": _COMPLAINT,
               "refund": _REFUND},
    "trainer": {"medical": _MEDICAL_COMMON + ("травма", "после операция", "сердце", "injury"),
                "legal": _LEGAL, "complaint": _COMPLAINT, "refund": _REFUND},
}  # fmt: skip
# Which topic speaks when a message names several (a refund asked in anger is a refund).
_TOPIC_ORDER = ("refund", "legal", "medical", "complaint")
MAX_SAFETY_WORDS = 500  # per portal, all topics together (assistant settings)


@functools.lru_cache(maxsize=64)
def _safety_lexicon(vocabulary: tuple[tuple[str, tuple[str, ...]], ...]) -> Lexicon:
    return Lexicon(
        (phrase, topic, 0.9)
        for topic, phrases in vocabulary
        for phrase in phrases[:MAX_SAFETY_WORDS]
    )


def safety_vocabulary(kind: str = "salon", extra: Mapping[str, Sequence[str]] | None = None
                      ) -> tuple[tuple[str, tuple[str, ...]], ...]:  # fmt: skip
    """The default vocabulary of a business kind plus a portal's own words, hashable."""
    base = DEFAULT_SAFETY.get(kind) or DEFAULT_SAFETY["salon"]
    extra = extra or {}
    return tuple(
        (topic, tuple(base.get(topic, ())) + tuple(str(w)[:64] for w in extra.get(topic, ())))
        for topic in TOPICS
    )


@functools.cache
def _intent_lexicon() -> Lexicon:
    return Lexicon(
        [(p, "operator", 0.95) for p in _OPERATOR]
        + [(p, "back", 0.9) for p in _BACK]
        + [(p, "greeting", 0.9) for p in _GREETING]
    )


def find_topics(tokens: Sequence[str], vocabulary: tuple[tuple[str, tuple[str, ...]], ...] | None
                = None) -> set[str]:  # fmt: skip
    """The safety topics a message names (``medical``, ``legal``, ``complaint``, ``refund``)."""
    return {
        label for label, _, _ in _safety_lexicon(vocabulary or safety_vocabulary()).find(tokens)
    }


# --- the one reply classifier: reminders and the assistant -----------------------------------

_ALONE = {"1": "confirm", "+": "confirm", "2": "cancel"}  # a reminder's numbered answers
_CONFIRM = frozenset(
    "да ага угу подтверждать подтвердить подтверждаю подтверждаем подтверждено подтверждена "
    "буду приду придем прийти ок окей ok okay yes yep yeah y confirm confirmed sure хорошо "
    "верно конечно согласен согласна записывайте отлично correct fine great".split()
)  # fmt: skip
_CANCEL = frozenset(
    "нет отмена отменить отмените отменяю передумал передумала cancel cancelled canceled "
    "no nope".split()
)  # fmt: skip
_CANCEL_PHRASES = ("не смогу", "не приду", "не получится", "не успею", "не буду", "не надо",
                   "can't", "cannot", "can not", "won't", "will not", "not come",
                   "can't make it")  # fmt: skip
_RESCHEDULE = frozenset("перенести переносить перенос reschedule postpone move".split())
# «СТОП» and its kin: no more messages (b24app/consent). «стоп» / "stop" only alone (with
# «пожалуйста», «хватит»…): «стоп, я перепутала время» is not an opt-out; the unsubscribe
# words and «не пишите мне» in any short message.
_STOP_ALONE = frozenset("стоп stop".split())
_STOP_FILLER = frozenset("пожалуйста please всё все хватит plz pls".split())
_UNSUBSCRIBE = frozenset(
    "отписаться отписать отписка отписываться unsubscribe unsub optout opt-out".split()
)  # fmt: skip
_UNSUBSCRIBE_PHRASES = re.compile(
    r"(?<!\w)(?:не|больше не) (?:пишите|присылайте|отправляйте|беспокойте|пишете)(?!\w)"
    r"|(?<!\w)(?:stop|don't|do not) (?:texting|messaging|writing|sending|text|message|write)"
    r"(?!\w)|(?<!\w)opt out(?!\w)"
)
CONFIRM_EMOJI = ("👍", "✅", "👌", "🆗")
CANCEL_EMOJI = ("👎", "❌", "🚫")
_SHORT = 6  # a yes/no is a short message; a long one is read for what else it says


def is_opt_out(lowered: str, tokens: Sequence[str], lemmas: set[str]) -> bool:
    """Whether a short message asks for no more messages («СТОП», «отписаться»,
    "unsubscribe", «не пишите мне больше»)."""
    if not tokens or len(tokens) > _SHORT:
        return False
    if set(tokens) & _STOP_ALONE and set(tokens) <= _STOP_ALONE | _STOP_FILLER:
        return True
    return bool(lemmas & _UNSUBSCRIBE or set(tokens) & _UNSUBSCRIBE) or bool(
        _UNSUBSCRIBE_PHRASES.search(lowered)
    )


def classify_reply(text: str) -> str | None:
    """``optout``, ``confirm``, ``cancel``, ``reschedule`` or None for a client's reply (ru/en).

    The one rule for a reminder's answer (:mod:`b24app.appointments.replies`) and the
    assistant's turns. An opt-out wins over everything («СТОП», b24app/consent), a reschedule
    over the rest («да, перенесите»); a reply that says yes and no at once («да нет, …») is
    None.
    """
    lowered = normalise(text)[:500]
    tokens = words(lowered)
    lemmas = {lemma(t) for t in tokens}
    if is_opt_out(lowered, tokens, lemmas):
        return "optout"
    if lemmas & _RESCHEDULE:
        return "reschedule"
    if len(tokens) == 1 and tokens[0] in _ALONE:
        return _ALONE[tokens[0]]
    cancel = any(e in lowered for e in CANCEL_EMOJI) or any(
        re.search(rf"(?<!\w){re.escape(p)}(?!\w)", lowered) for p in _CANCEL_PHRASES
    )
    confirm = any(e in lowered for e in CONFIRM_EMOJI)
    if len(tokens) <= _SHORT:
        cancel = cancel or any(t in _CANCEL for t in tokens)
        confirm = confirm or (
            not cancel and "не" not in tokens and any(t in _CONFIRM for t in tokens)
        )
    if confirm and cancel:
        return None
    return "confirm" if confirm else "cancel" if cancel else None


def find_intents(tokens: Sequence[str], vocabulary: tuple[tuple[str, tuple[str, ...]], ...]
                 | None = None, text: str | None = None
                 ) -> tuple[dict[str, float], str | None]:  # fmt: skip
    """Intents with their scores, and the safety topic behind a hand-off intent."""
    found: dict[str, float] = {}
    lexicon = _intent_lexicon()
    for label, score, _ in lexicon.find(tokens):
        if label != "greeting":
            found[label] = max(found.get(label, 0.0), score)
    if any(label == "greeting" for label, _, _ in lexicon.find(tokens, limit=3)):
        found["greeting"] = 0.9
    topics = find_topics(tokens, vocabulary)
    for name in topics:
        found[TOPIC_INTENT[name]] = 0.9
    topic = next((t for t in _TOPIC_ORDER if t in topics), None)
    reply = classify_reply(" ".join(tokens) if text is None else text)
    if reply and not (topics and reply == "confirm"):
        found[reply] = 0.95 if reply != "confirm" or tokens[0] in _CONFIRM else 0.8
    if "reschedule" in found or topics & {"refund", "complaint"}:
        found.pop("back", None)  # «верните деньги», "money back" are not the «назад» button
    return found, topic


# --- services --------------------------------------------------------------------------------


@functools.lru_cache(
    maxsize=32
)  # portals served by one worker, each ~1 s to build at 40,000 synonyms
def service_index(services: tuple[Service, ...]) -> Lexicon:
    """The portal's services as one index, built once per set of services (settings version)."""
    return Lexicon(
        [(n, s.code, 0.95) for s in services for n in s.names]
        + [(syn, s.code, 0.85) for s in services for syn in s.synonyms],
        fuzzy=True,
    )


def find_service(tokens: Sequence[str], services: Sequence[Service]) -> tuple[str, float] | None:
    """The service named, the longest phrase winning («покрасить брови» over «покрасить»)."""
    if not services:
        return None
    found = service_index(tuple(services)).find(tokens)
    return (found[0][0], found[0][1]) if found else None


# --- dates and times: a small grammar over the message with numbers as digits ----------------
# No maintained Russian parser covers what clients write to a salon in one pass («завтра
# полшестого», «с четверга на пятницу», «в 8» that must be asked about); the grammar below is
# the hand-written part, measured on bench/nlu_corpus.jsonl (duckling's and chrono's Russian
# facts included).

_CARDINALS = {
    "ноль": 0, "один": 1, "два": 2, "три": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7,
    "восемь": 8, "девять": 9, "десять": 10, "одиннадцать": 11, "двенадцать": 12,
    "тринадцать": 13, "четырнадцать": 14, "пятнадцать": 15, "шестнадцать": 16,
    "семнадцать": 17, "восемнадцать": 18, "девятнадцать": 19, "двадцать": 20, "тридцать": 30,
    "сорок": 40, "пятьдесят": 50, "четверть": 15,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_ORDINALS = {
    "первый": 1, "второй": 2, "третий": 3, "четвертый": 4, "пятый": 5, "шестой": 6,
    "седьмой": 7, "восьмой": 8, "девятый": 9, "десятый": 10, "одиннадцатый": 11,
    "двенадцатый": 12, "тринадцатый": 13, "четырнадцатый": 14, "пятнадцатый": 15,
    "шестнадцатый": 16, "семнадцатый": 17, "восемнадцатый": 18, "девятнадцатый": 19,
    "двадцатый": 20, "тридцатый": 30,
}  # fmt: skip
_WORD_RE = re.compile(r"[а-яa-z]+")


def _number(word: str) -> int | None:
    base = lemma(word)
    value = _CARDINALS.get(base, _ORDINALS.get(base))
    if value is None and word in _CARDINALS:
        value = _CARDINALS[word]
    return value


def digits_of(text: str) -> str:
    """Numbers written as words become digits («двадцать четвертое» → 24, «полшестого» →
    5:30, «без пятнадцати пять» → 4:45, «в половине третьего» → 2:30)."""
    out: list[str] = []
    pos = 0
    pending: tuple[int, int, int] | None = None  # start, end, value of a tens word

    def flush() -> None:
        nonlocal pending
        if pending:
            out.append(str(pending[2]))
            pending = None

    for m in _WORD_RE.finditer(text):
        word = m.group(0)
        value = _number(word) if word != "час" else None
        if word.startswith("пол") and len(word) > 6 and word != "полдень" and not value:
            half = _ORDINALS.get(lemma(word[3:]))
            if half:
                flush()
                out.append(text[pos : m.start()] + f"{(half - 1) or 12}:30")
                pos = m.end()
                continue
        if value is None:
            continue
        if (
            pending
            and pending[2] % 10 == 0
            and 0 < value < 10
            and text[pending[1] : m.start()].strip() == ""
        ):
            out.append(text[pos : pending[0]] + str(pending[2] + value))
            pending = None
            pos = m.end()
            continue
        if pending:
            out.append(text[pos : pending[0]] + str(pending[2]))
            pos = pending[1]
            pending = None
        if value >= 20 and value % 10 == 0:
            pending = (m.start(), m.end(), value)
            continue
        out.append(text[pos : m.start()] + str(value))
        pos = m.end()
    if pending:
        out.append(text[pos : pending[0]] + str(pending[2]))
        pos = pending[1]
    out.append(text[pos:])
    result = "".join(out)
    result = re.sub(
        r"половин\w*\s+(\d{1,2})\b", lambda m: f"{(int(m.group(1)) - 1) or 12}:30", result
    )
    result = re.sub(
        r"\bбез\s+(\d{1,2})\s+(?:минут\w*\s+)?(\d{1,2})\b",
        lambda m: f"{(int(m.group(2)) - 1) or 12}:{60 - int(m.group(1)):02d}"
        if 0 < int(m.group(1)) < 60 else m.group(0),
        result,
    )  # fmt: skip
    return result


_GREETINGS_RE = re.compile(
    r"\b(?:добр(?:ый|ое|ого)\s+(?:день|дня|вечер|вечера|утро|утра)|good\s+(?:morning|afternoon|evening|day))\b"
)
_MONTHS = {
    "январ": 1, "янв": 1, "феврал": 2, "фев": 2, "март": 3, "мар": 3, "апрел": 4, "апр": 4,
    "ма": 5, "май": 5, "июн": 6, "июл": 7, "август": 8, "авг": 8, "сентябр": 9, "сен": 9,
    "сент": 9, "октябр": 10, "окт": 10, "ноябр": 11, "ноя": 11, "декабр": 12, "дек": 12,
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "april": 4, "may": 5,
    "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
}  # fmt: skip
_MONTH_RE = (r"(январ[ьяюе]|янв|феврал[ьяюе]|фев|марта?|мар|апрел[ьяюе]|апр|ма[йяюе]|"
             r"июн[ьяюе]|июл[ьяюе]|августа?|авг|сентябр[ьяюе]|сент?|октябр[ьяюе]|окт|"
             r"ноябр[ьяюе]|ноя|декабр[ьяюе]|дек|january|february|march|april|may|june|july|"
             r"august|september|october|november|december|jan|feb|apr|jun|jul|aug|sept?|oct|"
             r"nov|dec)\.?")  # fmt: skip
_DAY_SUFFIX = r"(?:-?(?:го|е|ое|ого|ого|его|ье|ое|st|nd|rd|th))?"
_DATE_WORD = re.compile(
    rf"(?<![\d:.])(\d{{1,2}}){_DAY_SUFFIX}(?:\s+of)?[\s/-]*{_MONTH_RE}(?:[\s,/-]+(\d{{4}}|\d{{2}})(?!\s*(?::|ч|час|утра|вечера|дня)))?(?:\s*г(?:ода|\.)?)?(?![а-я])"
)
_DATE_WORD_EN = re.compile(rf"\b{_MONTH_RE}\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?![:.]\d)")
_DATE_NUM = re.compile(r"(?<![\d:.])(\d{1,2})\.(\d{1,2})(?:\.(\d{4}|\d{2}))?\.?(?![\d:])")
_WEEKDAYS = (
    (0, r"понедельник\w*|пн|monday|mon"),
    (1, r"вторник\w*|вт|tuesday|tues?"),
    (2, r"сред[ауые]|ср|wednesday|wed"),
    (3, r"четверг\w*|чт|thursday|thu|thurs?"),
    (4, r"пятниц[аыуе]|пт|friday|fri"),
    (5, r"суббот[аыуе]|сб|saturday|sat"),
    (6, r"воскресень[еяю]|вс|вск|sunday|sun"),
)
_WEEKDAY_RE = re.compile(r"\b(?:" + "|".join(f"(?P<d{d}>{p})" for d, p in _WEEKDAYS) + r")\b")
_REL_RE = re.compile(
    r"\b(?:(?P<ppz>послепослезавтра)|(?P<pz>послезавтра|day after tomorrow)|"
    r"(?P<z>завтра|tomorrow)|(?P<s>сегодня|today|tonight)|"
    r"(?P<in>(?:через|in)\s+(?:(?P<n>\d{1,2})\s+)?(?:(?P<days>дн(?:я|ей|и)|день|days?)|(?P<weeks>недел[юиь]|weeks?)|(?P<aweek>a\s+week)))|"
    r"(?P<we>(?:на|в)\s+(?:эти\s+|этих\s+|ближайшие\s+)?выходн\w*|(?:this|the|on the|at the)\s+weekend)|"
    r"(?P<nw>на\s+следующей\s+неделе|next\s+week))\b"
)
_PREV = re.compile(r"(?:\b(?:с|со|from)\s*)$")
_NEXT = re.compile(r"(?:\b(?:на|to|until)\s*)$")


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


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _month_of(word: str) -> int | None:
    word = word.rstrip(".")
    if word in _MONTHS:
        return _MONTHS[word]
    for stem in sorted(_MONTHS, key=len, reverse=True):
        if word.startswith(stem):
            return _MONTHS[stem]
    return None


_TIME_PREP_BEFORE = re.compile(r"(?:\b(?:в|во|к|до|после|с|около|at|by|after|before)\s*)$")


def _find_days(text: str, today: dt.date) -> tuple[list[tuple[int, int, dt.date, int]], str]:
    """Every day mentioned: (start, end, date, rank) — rank 0 a date, 1 relative, 2 weekday;
    and the text with them blanked out (so «через 2 дня» is not 14:00)."""
    found: list[tuple[int, int, dt.date, int]] = []
    for m in _REL_RE.finditer(text):
        g = m.groupdict()
        day: dt.date | None = None
        if g["ppz"]:
            day = today + dt.timedelta(days=3)
        elif g["pz"]:
            day = today + dt.timedelta(days=2)
        elif g["z"]:
            day = today + dt.timedelta(days=1)
        elif g["s"]:
            day = today
        elif g["in"]:
            n = int(g["n"]) if g["n"] else 1
            day = today + dt.timedelta(days=n * (7 if (g["weeks"] or g["aweek"]) else 1))
        elif g["we"]:
            day = today + dt.timedelta(days=(5 - today.weekday()) % 7 if today.weekday() < 6 else 0)
        elif g["nw"]:
            day = today + dt.timedelta(days=7 - today.weekday())
        if day:
            found.append((m.start(), m.end(), day, 1))
    for m in _DATE_WORD.finditer(text):
        month = _month_of(m.group(2))
        year = int(m.group(3)) if m.group(3) else None
        if month and 1 <= int(m.group(1)) <= 31:
            date = _future_date(today, int(m.group(1)), month, year)
            if date:
                found.append((m.start(), m.end(), date, 0))
    for m in _DATE_WORD_EN.finditer(text):
        month = _month_of(m.group(1))
        if month:
            date = _future_date(today, int(m.group(2)), month, None)
            if date:
                found.append((m.start(), m.end(), date, 0))
    for m in _DATE_NUM.finditer(text):
        day_, month_ = int(m.group(1)), int(m.group(2))
        year = int(m.group(3)) if m.group(3) else None
        if (
            year is None
            and _TIME_PREP_BEFORE.search(text[: m.start()])
            and (month_ > 12 or m.group(2) in ("00", "15", "30", "45"))
        ):
            continue  # «в 12.30»: a time
        if 1 <= month_ <= 12 and 1 <= day_ <= 31:
            date = _future_date(today, day_, month_, year)
            if date:
                found.append((m.start(), m.end(), date, 0))
    for m in _WEEKDAY_RE.finditer(text):
        weekday = next(int(k[1:]) for k, v in m.groupdict().items() if v)
        ahead = (weekday - today.weekday()) % 7 or 7
        found.append((m.start(), m.end(), today + dt.timedelta(days=ahead), 2))
    for start, end, _, _ in found:
        text = _blank(text, start, end)
    return found, text


def _pick_day(text: str, found: list[tuple[int, int, dt.date, int]]) -> dt.date | None:
    """«с четверга на пятницу»: the day after «на»; else the most specific, first."""
    if not found:
        return None
    if len({f[2] for f in found}) > 1:
        ordered = sorted(found)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if re.fullmatch(r"\s*,?\s*(?:или|либо|or)\s*", text[a[1] : b[0]]):
                return None  # «в среду или четверг»: the dialog asks
        targets = [f for f in found if _NEXT.search(text[: f[0]])]
        sources = [f for f in found if _PREV.search(text[: f[0]])]
        if targets and sources:
            return targets[-1][2]
    return sorted(found, key=lambda f: (f[3], f[0]))[0][2]


_QUAL = (r"(?:\s*(?P<{n}>утра|утром|вечера|вечером|дня|днем|ночи|пополудни|после\s+полудня|"
         r"am|pm|a\.m\.|p\.m\.|in\s+the\s+(?:morning|afternoon|evening)|tonight))?")  # fmt: skip
_CLOCK = r"(?P<{h}>[01]?\d|2[0-4])(?:\s*[:.]\s*(?P<{m}>[0-5]\d)|\s*ч\s*(?P<{m2}>[0-5]\d))?(?P<{u}>\s*(?:ч\b|час\w*|h\b|o'clock))?"
_NOT_TIME = (r"(?!\s*(?:раз|человек|чел\b|мм\b|см\b|кг\b|лет\b|год|месяц|недел|мин|руб|р\b|тыс|%|"
             r"шт|процент|этаж|кабинет|зал|дней|сеанс|заняти|процедур|мес|кг|days|weeks|people|"
             r"persons|times|\d))")  # fmt: skip


def _clock(n: str) -> str:
    return _CLOCK.format(h=f"h{n}", m=f"m{n}", m2=f"n{n}", u=f"u{n}")


_RANGE_RE = re.compile(
    r"(?:\b(?:с|со|от|from|between|между)\s+)?"
    + _clock("1")
    + _QUAL.format(n="q1")
    + r"\s*(?:-|–|—|до|по|to|and|и|/)\s*"
    + _clock("2")
    + _QUAL.format(n="q2")
    + _NOT_TIME
)
_BOUND_RE = re.compile(
    r"\b(?P<prep>после|с|со|from|after|since|до|before|by|не\s+позже|не\s+позднее|не\s+раньше|не\s+ранее)\s+"
    + _clock("1")
    + _QUAL.format(n="q1")
    + _NOT_TIME
)
_AT_RE = re.compile(
    r"(?:\b(?P<prep>в|во|на|к|около|at|around|about|@)\s+)?"
    + _clock("1")
    + r"(?:\s+(?P<mm>[0-5]\d)\b)?"
    + _QUAL.format(n="q1")
    + _NOT_TIME
)
_NAMED = {"полдень": dt.time(12), "полудню": dt.time(12), "noon": dt.time(12),
          "midday": dt.time(12), "полночь": dt.time(0), "midnight": dt.time(0)}  # fmt: skip
_NAMED_RE = re.compile(r"\b(полдень|полудню|noon|midday|полночь|midnight)\b")
_PARTS = (
    (re.compile(r"\bдо\s+обеда\b|\bbefore\s+lunch\b"), None, dt.time(12)),
    (re.compile(r"\bпосле\s+обеда\b|\bafter\s+lunch\b"), dt.time(14), None),
    (re.compile(r"\b(?:в\s+)?обед\w*\b|\blunch\w*\b"), dt.time(12), dt.time(14)),
    (re.compile(r"\bутр\w*|\bmorning\b"), dt.time(9), dt.time(12)),
    (re.compile(r"\bдн[её]м\b|\bafternoon\b"), dt.time(12), dt.time(17)),
    (
        re.compile(r"\bвечер\w*|\bevening\b|\btonight\b|\bпосле\s+работы\b"),
        dt.time(17),
        dt.time(21),
    ),
)
_AMBIGUOUS = (7, 8)  # a bare «в 8»: 8:00 and 20:00 are both working hours somewhere


def _qual_kind(q: str | None) -> str | None:
    if not q:
        return None
    q = q.strip()
    if q.startswith(("утр", "am", "a.m")) or q.endswith("morning"):
        return "am"
    if q.startswith("ноч"):
        return "night"
    return "pm"


def _resolve(
    h: int, minute: int | None, qual: str | None, unit: bool
) -> tuple[int, int] | str | None:
    """24-hour (hour, minute); "ambiguous" for a bare 7 or 8; None when not a clock time."""
    if h > 24 or (h == 24 and minute):
        return None
    kind = _qual_kind(qual)
    m = minute or 0
    if kind == "am":
        return (0 if h == 12 else h, m) if h <= 12 else None
    if kind == "pm":
        return (h + 12 if h < 12 else h, m) if h <= 23 else None
    if kind == "night":
        return ((h + 12) % 24 if h in (10, 11, 12) else h, m) if h <= 12 else None
    if 1 <= h <= 6:
        return (h + 12, m)  # «в 5», «полшестого»: a salon does not open at 5 a.m.
    if minute is not None:
        return (h % 24, m)
    if h in _AMBIGUOUS:
        return "ambiguous"
    return (h % 24, 0) if h else None


def _group_min(m: re.Match[str], n: str) -> int | None:
    raw = m.group(f"m{n}") or m.group(f"n{n}")
    return int(raw) if raw else None


def find_time(text: str) -> tuple[When, float, int | None]:
    """The time wish in ``text`` (days already blanked): a clock time, a window or nothing;
    and a bare hour that needs asking."""
    ambiguous: int | None = None
    for m in _RANGE_RE.finditer(text):
        m1, m2 = _group_min(m, "1"), _group_min(m, "2")
        sep = text[m.end("h1") : m.start("h2")]
        has_prep = bool(re.match(r"\s*(?:с|со|от|from|between|между)\b", m.group(0)))
        if not has_prep and not (m1 is not None and m2 is not None) and not m.group("u1"):
            continue  # «13 - 15 июля» is days, «2-3 человека» is not time
        if not has_prep and re.search(r"\b(?:и|and)\b", sep):
            continue
        q2 = m.group("q2")
        q1 = m.group("q1") or q2
        a = _resolve(int(m.group("h1")), m1, q1, True)
        b = _resolve(int(m.group("h2")), m2, q2, True)
        if isinstance(a, str) and isinstance(b, tuple):
            a = (int(m.group("h1")), m1 or 0)
        if isinstance(b, str) and isinstance(a, tuple):
            b = (int(m.group("h2")), m2 or 0)
            if b < a:
                b = (b[0] + 12, b[1])
        if isinstance(a, tuple) and isinstance(b, tuple):
            if b <= a and b[0] + 12 < 24 and not q2:
                b = (b[0] + 12, b[1])
            if b > a:
                return When(earliest=dt.time(*a), latest=dt.time(b[0] % 24, b[1])), 0.9, None
    for m in _BOUND_RE.finditer(text):
        r = _resolve(int(m.group("h1")), _group_min(m, "1"), m.group("q1"), bool(m.group("u1")))
        if r == "ambiguous":
            ambiguous = int(m.group("h1"))
            continue
        if isinstance(r, tuple):
            at = dt.time(r[0] % 24, r[1])
            prep = m.group("prep")
            if prep in ("после", "с", "со", "from", "after", "since") or prep.endswith(
                ("раньше", "ранее")
            ):
                return When(earliest=at), 0.9, None
            return When(latest=at), 0.9, None
    for m in _AT_RE.finditer(text):
        prep, minute = m.group("prep"), _group_min(m, "1")
        if minute is None and m.group("mm") and prep in ("в", "во", "at"):
            minute = int(m.group("mm"))
        qual, unit = m.group("q1"), bool(m.group("u1"))
        if not (prep or qual or unit or minute is not None):
            continue
        if prep == "на" and not (qual or unit or minute is not None):
            continue
        r = _resolve(int(m.group("h1")), minute, qual, unit)
        if r == "ambiguous":
            ambiguous = int(m.group("h1"))
            continue
        if isinstance(r, tuple):
            score = 0.95 if (minute is not None or qual) else 0.85 if r[0] >= 9 else 0.7
            return When(at=dt.time(r[0] % 24, r[1])), score, None
    named = _NAMED_RE.search(text)
    if named:
        return When(at=_NAMED[named.group(1)]), 0.9, None
    if ambiguous is not None:
        return When(), 0.0, ambiguous
    for pattern, start, end in _PARTS:
        if pattern.search(text):
            return When(earliest=start, latest=end), 0.8, None
    return When(), 0.0, None


def find_when(text: str, now: dt.datetime) -> tuple[When, float] | None:
    """The desired day/time in ``text``; ``now`` is the portal's local time."""
    when, score, _ = _find_when(normalise(text), now)
    return (when, score) if when != When() else None


def _find_when(norm: str, now: dt.datetime) -> tuple[When, float, int | None]:
    text = digits_of(_GREETINGS_RE.sub(lambda m: " " * len(m.group(0)), norm))
    days, rest = _find_days(text, now.date())
    day = _pick_day(text, days)
    when, score, ambiguous = find_time(rest)
    if day:
        when = replace(when, day=day)
        score = min(score, 0.9) if when.has_time else 0.9
    return when, score, ambiguous


# --- phones and names ------------------------------------------------------------------------

_MAYBE_PHONE = re.compile(r"(?:\d\D{0,3}){7}")


def _phones(text: str) -> list[tuple[int, int, str]]:
    """Valid phone numbers (phonenumbers, region RU): (start, end, E.164)."""
    if not _MAYBE_PHONE.search(text):
        return []
    found = []
    for match in phonenumbers.PhoneNumberMatcher(text, "RU", leniency=phonenumbers.Leniency.VALID):
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        found.append((match.start, match.end, e164))
    return found


def find_phone(text: str) -> str | None:
    """An E.164 phone number (``+79123456789``); a number missing a digit is not one."""
    found = _phones(text[:MAX_TEXT])
    return found[0][2] if found else None


_NAME_INTRO = re.compile(
    r"(?:меня зовут|зовут|мое имя|моё имя|my name is|i am|i'm|this is|это|я|name:?|имя:?)"
    r"\s+([A-Za-zА-Яа-яЁё][A-Za-zА-Яа-яЁё-]{1,30}(?:\s+[A-ZА-ЯЁ][a-zа-яё-]{1,30})?)",
    re.IGNORECASE,
)
_NOT_NAMES = {"да", "нет", "ок", "хорошо", "yes", "no", "ok", "завтра", "сегодня", "tomorrow",
              "today", "спасибо", "thanks", "привет", "hello", "hi", "здравствуйте",
              "whatsapp", "telegram", "viber", "looking", "allergic", "pregnant", "sorry",
              "fine", "here", "not", "good", "the", "a"}  # fmt: skip


def _is_name(word: str, *, latin_ok: bool) -> bool:
    if normalise(word) in _NOT_NAMES or len(word) < 2:
        return False
    if re.fullmatch(r"[A-Za-z-]+", word):
        return latin_ok and word[:1].isupper()
    return bool(_name_tags(word) & {"Name"})


@functools.lru_cache(maxsize=50_000)
def _name_kind(word: str) -> tuple[bool, bool]:
    """(surely a first name, maybe one): «Аня» is sure; «Вера», «Роза» need the context."""
    if normalise(word) in _NOT_NAMES:
        return False, False
    parses = _morph().parse(word.lower())
    sure = "Name" in parses[0].tag and parses[0].score >= 0.5
    return sure, sure or bool(_name_tags(word) & {"Name"})


def _ner_person(text: str, at: int) -> bool:
    """natasha's NER sees a person at offset ``at`` (only asked for ambiguous words: the
    model costs milliseconds a message, the dictionary microseconds)."""
    from natasha import Doc  # the model is loaded once by _ner()

    segmenter, tagger = _ner()
    doc = Doc(text[:500])
    doc.segment(segmenter)
    doc.tag_ner(tagger)
    return any(span.type == "PER" and span.start <= at < span.stop for span in doc.spans)


def _title(name: str) -> str:
    return " ".join(p[:1].upper() + p[1:] for p in name.split())


def _with_surname(first: str, rest: str) -> str:
    """``first`` and, when the next word is a surname by its tags, that too."""
    nxt = re.match(r"\s+([A-Za-zА-Яа-яЁё-]{2,30})", rest)
    if nxt and re.fullmatch(r"[А-Яа-яЁё-]+", nxt.group(1)) and "Surn" in _name_tags(nxt.group(1)):
        return f"{first} {nxt.group(1)}"
    return first


def find_name(text: str, *, expected: bool) -> tuple[str, float] | None:
    """A client's name where the message offers one: after «меня зовут»/"my name is", a
    capitalised first name (by pymorphy3's Name tag; natasha's NER decides the words that are
    also common nouns), or the bare reply when a name was just asked."""
    for match in _NAME_INTRO.finditer(text):
        first = match.group(1).split()[0]
        if _is_name(first, latin_ok=True):
            full = _with_surname(first, text[match.start(1) + len(first) :])
            return _title(full), 0.9
    bare = re.sub(r"[+\d\s().,-]{7,}", " ", text)  # the phone may come in the same message
    parts = [p for p in re.split(r"[\s,]+", bare.strip()) if p]
    if (
        expected
        and 1 <= len(parts) <= 3
        and all(re.fullmatch(r"[A-Za-zА-Яа-яЁё-]{2,30}", p) for p in parts)
    ):
        if _is_name(parts[0], latin_ok=True):
            return _title(" ".join(parts)), 0.75
    if len(words(text)) > 1:  # a lone «Анна» is a name only when one was asked
        for match in re.finditer(r"(?<![\w-])[А-ЯЁ][а-яё]{1,30}(?![\w-])", text):
            word = match.group(0)
            sure, maybe = _name_kind(word)
            if sure or (maybe and _ner_person(text, match.start())):
                return _title(_with_surname(word, text[match.end() :])), 0.85
    if expected:
        for word in re.findall(r"[А-Яа-яЁё]{2,30}", bare)[:6]:
            if _is_name(word, latin_ok=False):
                return _title(word), 0.75
    return None


# --- the whole message -----------------------------------------------------------------------


def understand(
    text: str,
    *,
    now: dt.datetime,
    services: Sequence[Service] = (),
    expect: str | None = None,
    choices: Sequence[str] = (),
    lang: str = "ru",
    safety: tuple[tuple[str, tuple[str, ...]], ...] | None = None,
) -> Understanding:
    """Read one message. ``expect`` is the slot being asked for (``service``, ``when``,
    ``contact``, ``name``, ``slot``, ``confirm``): it makes a bare name acceptable; ``choices``
    are the button texts just offered (an exact or numbered reply picks one); ``lang`` the
    chat's language (both are read either way); ``safety`` the portal's vocabulary of
    hand-off topics (:func:`safety_vocabulary`; default: a salon's)."""
    text = (text or "").strip()[:MAX_TEXT]
    norm = normalise(text)
    phones = _phones(text)
    for start, end, _ in phones:  # digits of a phone are not a date or a time
        norm = _blank(norm, start, end)
    tokens = words(norm)
    intents, topic = find_intents(tokens, safety, norm)
    scores: dict[str, float] = dict(intents)
    choice = None
    for i, option in enumerate(choices, 1):
        if norm.strip() == normalise(option) or norm.strip() in (str(i), f"{i}.", f"{i})"):
            choice = option
            scores["choice"] = 1.0
            break
    if choice:  # a tapped «1» or «Да» is the button, not a yes/no or an hour
        for intent in ("confirm", "cancel"):
            intents.pop(intent, None)
            scores.pop(intent, None)
    service = find_service(tokens, services)
    if service:
        scores["service"] = service[1]
    when: When | None = None
    ambiguous = None
    if choice is None:
        found, score, ambiguous = _find_when(norm, now)
        if found != When():
            when = found
            scores["when"] = score
    if phones:
        scores["phone"] = 0.95
    name = find_name(text, expected=expect in ("contact", "name") and not intents)
    if name:
        scores["name"] = name[1]
    return Understanding(
        text=text,
        intents=frozenset(intents),
        service=service[0] if service else None,
        when=when,
        phone=phones[0][2] if phones else None,
        name=name[0] if name else None,
        choice=choice,
        scores=scores,
        topic=topic,
        ambiguous_hour=ambiguous,
    )
