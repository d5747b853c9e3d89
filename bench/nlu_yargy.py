"""A `yargy` grammar for days and times measured against the hand-written one (issue 21).

Runs a yargy extractor (rules, ``morph_pipeline``, ``dictionary``, ``gte/lte/type('INT')``
predicates and ``fact`` interpretations) and today's ``understand()`` over
``bench/nlu_corpus.jsonl``, ``bench/nlu_holdout.jsonl`` and ``bench/nlu_fresh.jsonl`` (44
messages written after both grammars, annotated for day and time only), scored with ``bench/nlu.py``'s
functions: day and time/window precision/recall/F1, WRONG TIMES, p50/p99 ms per message
after warm-up, and the grammar's size in lines.

The grammar reads Russian only (the English cases count as misses; a Russian-only line is
printed too). Both sides share the project's hour policy (``understanding._resolve``: a bare
1-6 is afternoon, a bare 7 or 8 is asked about), so the comparison is about the parser, not
the policy. The grammar got a fixed time box (~35 minutes), as a fair, not a tuned, attempt.

    python bench/nlu_yargy.py [--repeat 3] [--show]
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from yargy import and_  # noqa: E402
from yargy import or_  # noqa: E402
from yargy import Parser  # noqa: E402
from yargy import rule  # noqa: E402
from yargy.interpretation import fact  # noqa: E402
from yargy.pipelines import morph_pipeline  # noqa: E402
from yargy.predicates import dictionary  # noqa: E402
from yargy.predicates import eq  # noqa: E402
from yargy.predicates import gte  # noqa: E402
from yargy.predicates import in_  # noqa: E402
from yargy.predicates import lte  # noqa: E402
from yargy.predicates import normalized  # noqa: E402
from yargy.predicates import type as token_type  # noqa: E402

from b24app.assistant import understanding  # noqa: E402
from bench.nlu import CORPUS  # noqa: E402
from bench.nlu import load_corpus  # noqa: E402
from bench.nlu import NOW  # noqa: E402
from bench.nlu import predict  # noqa: E402
from bench.nlu import prf  # noqa: E402
from bench.nlu import score  # noqa: E402
from bench.nlu import TZ  # noqa: E402

HOLDOUT = CORPUS.with_name("nlu_holdout.jsonl")
# Written after both grammars (the two corpora above were in view while writing either).
FRESH = CORPUS.with_name("nlu_fresh.jsonl")

# --- grammar: begin (counted as the grammar's size) ---
Clock = fact("Clock", ["hour", "minute", "unit", "qual", "half", "to"])
Span = fact("Span", ["kind", "start", "end", "extra"])
Day = fact("Day", ["rel", "weekday", "after_n", "unit", "day", "month", "year", "source"])

INT = token_type("INT")
CARD = {"один": 1, "два": 2, "три": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7,
        "восемь": 8, "девять": 9, "десять": 10, "одиннадцать": 11, "двенадцать": 12,
        "тринадцать": 13, "четырнадцать": 14, "пятнадцать": 15, "шестнадцать": 16,
        "семнадцать": 17, "восемнадцать": 18, "девятнадцать": 19, "двадцать": 20,
        "тридцать": 30, "сорок": 40, "пятьдесят": 50, "четверть": 15}  # fmt: skip
ORD = {"первый": 1, "второй": 2, "третий": 3, "четвёртый": 4, "четвертый": 4, "пятый": 5,
       "шестой": 6, "седьмой": 7, "восьмой": 8, "девятый": 9, "десятый": 10,
       "одиннадцатый": 11, "двенадцатый": 12, "тринадцатый": 13, "четырнадцатый": 14,
       "пятнадцатый": 15, "шестнадцатый": 16, "семнадцатый": 17, "восемнадцатый": 18,
       "девятнадцатый": 19, "двадцатый": 20, "тридцатый": 30}  # fmt: skip
HALF = {"пол" + w[:-2] + ("его" if w.endswith("ий") else "ого"): n for w, n in ORD.items()}
MONTHS = {"январь": 1, "янв": 1, "февраль": 2, "фев": 2, "март": 3, "мар": 3, "апрель": 4,
          "апр": 4, "май": 5, "июнь": 6, "июль": 7, "август": 8, "авг": 8, "сентябрь": 9,
          "сен": 9, "октябрь": 10, "окт": 10, "ноябрь": 11, "ноя": 11, "декабрь": 12,
          "дек": 12}  # fmt: skip
WEEKDAYS = {"понедельник": 0, "пн": 0, "вторник": 1, "вт": 1, "среда": 2, "ср": 2,
            "четверг": 3, "чт": 3, "пятница": 4, "пт": 4, "суббота": 5, "сб": 5,
            "воскресенье": 6, "воскресение": 6, "вс": 6, "вск": 6}  # fmt: skip
QUALS = {"утро": "утра", "утра": "утра", "утром": "утра", "вечер": "вечера",
         "вечера": "вечера", "день": "дня", "дня": "дня", "ночь": "ночи", "ночи": "ночи",
         "пополудни": "дня"}  # fmt: skip


def any_(*parts: Any) -> Any:
    """``or_`` over rules and bare predicates alike."""
    return or_(*(p if hasattr(p, "productions") else rule(p) for p in parts))


def _num(word: str) -> int | None:
    return CARD.get(word.replace("ё", "е")) or CARD.get(word)


HOUR = any_(
    rule(and_(INT, gte(0), lte(24))).interpretation(Clock.hour.custom(int)),
    rule(dictionary(set(CARD) - {"четверть"})).interpretation(Clock.hour.normalized().custom(_num)),
)
MINUTE = rule(and_(INT, gte(0), lte(59))).interpretation(Clock.minute.custom(int))
UNIT = rule(any_(normalized("час"), eq("ч"))).interpretation(Clock.unit)
QUAL = any_(
    rule(in_(set(QUALS))).interpretation(Clock.qual.custom(QUALS.get)),
    rule("после", "полудня").interpretation(Clock.qual.const("дня")),
)
CLOCK = any_(
    rule(HOUR, any_(eq(":"), eq(".")), MINUTE, UNIT.optional(), QUAL.optional()),
    rule(HOUR, eq("ч"), MINUTE),
    rule(HOUR, UNIT.optional(), QUAL.optional()),
    rule(in_(set(HALF))).interpretation(Clock.half.custom(HALF.get)),
    rule(
        normalized("половина"),
        dictionary(set(ORD)).interpretation(Clock.half.normalized().custom(ORD.get)),
    ),
    rule(
        "без",
        any_(rule(INT), rule(dictionary(set(CARD)))).interpretation(
            Clock.to.normalized().custom(lambda w: int(w) if w.isdigit() else _num(w))
        ),
        HOUR,
        QUAL.optional(),
    ),
).interpretation(Clock)
AT_PREP = any_(eq("в"), eq("во"), eq("к"), eq("около"), eq("на"), rule("ближе", "к"))
AT = rule(
    AT_PREP.interpretation(Span.kind.const("at")),
    CLOCK.interpretation(Span.start),
    and_(INT, gte(0), lte(59)).interpretation(Span.extra.custom(int)).optional(),
).interpretation(Span)
RANGE = any_(
    rule(any_(eq("с"), eq("со"), eq("от"), eq("между")).interpretation(Span.kind.const("range")),
         CLOCK.interpretation(Span.start), any_(eq("до"), eq("по"), eq("и"), eq("-")),
         CLOCK.interpretation(Span.end)),
    rule(CLOCK.interpretation(Span.start), eq("-").interpretation(Span.kind.const("range")),
         CLOCK.interpretation(Span.end)),
).interpretation(Span)  # fmt: skip
AFTER = rule(
    any_(eq("после"), eq("с"), rule("не", "раньше")).interpretation(Span.kind.const("after")),
    CLOCK.interpretation(Span.start),
).interpretation(Span)
BEFORE = rule(
    eq("до").interpretation(Span.kind.const("before")), CLOCK.interpretation(Span.end)
).interpretation(Span)
BARE = rule(CLOCK.interpretation(Span.start)).interpretation(Span)  # kind None
NAMED = morph_pipeline(["полдень", "в полдень"]).interpretation(Span.kind.const("noon"))
PARTS = any_(
    morph_pipeline(["до обеда"]).interpretation(Span.kind.const("-12:00")),
    morph_pipeline(["после обеда"]).interpretation(Span.kind.const("14:00-")),
    morph_pipeline(["в обед", "обед"]).interpretation(Span.kind.const("12:00-14:00")),
    morph_pipeline(["утром", "с утра", "утро"]).interpretation(Span.kind.const("09:00-12:00")),
    rule(in_({"днем", "днём"})).interpretation(Span.kind.const("12:00-17:00")),  # not «день»
    morph_pipeline(["вечером", "вечер", "после работы", "ближе к вечеру"]).interpretation(
        Span.kind.const("17:00-21:00")
    ),
)
TIME = any_(RANGE, AFTER, BEFORE, AT, NAMED, PARTS, BARE).interpretation(Span)

DAY_NUM = rule(
    and_(INT, gte(1), lte(31)).interpretation(Day.day.custom(int)),
    rule(eq("-").optional(), in_({"е", "го", "ого", "ое", "ье"})).optional(),
)
DAY_WORD = any_(
    rule(dictionary(set(ORD))).interpretation(Day.day.normalized().custom(ORD.get)),
    rule(
        dictionary({"двадцать", "тридцать"}).interpretation(Day.source.normalized()),
        dictionary(set(ORD)).interpretation(Day.day.normalized().custom(ORD.get)),
    ),
)
MONTH = dictionary(set(MONTHS)).interpretation(Day.month.normalized().custom(MONTHS.get))
YEAR = and_(INT, gte(1900), lte(2100)).interpretation(Day.year.custom(int))
WEEKDAY = dictionary(set(WEEKDAYS)).interpretation(Day.weekday.normalized().custom(WEEKDAYS.get))
DAY = any_(
    rule(any_(DAY_NUM, DAY_WORD), eq("-").optional(), MONTH, YEAR.optional(),
         normalized("год").optional()),
    rule(and_(INT, gte(1), lte(31)).interpretation(Day.day.custom(int)), eq("."),
         and_(INT, gte(1), lte(12)).interpretation(Day.month.custom(int)),
         rule(eq("."), INT.interpretation(Day.year.custom(int))).optional()),
    rule(morph_pipeline(["сегодня", "завтра", "послезавтра", "послепослезавтра"])
         .interpretation(Day.rel.normalized())),
    rule(eq("через"), INT.interpretation(Day.after_n.custom(int)).optional(),
         dictionary({"день", "неделя"}).interpretation(Day.unit.normalized())),
    rule(eq("через"), dictionary(set(CARD)).interpretation(Day.after_n.normalized().custom(_num)),
         dictionary({"день", "неделя"}).interpretation(Day.unit.normalized())),
    rule(morph_pipeline(["на выходных", "в эти выходные", "выходные"])
         .interpretation(Day.rel.const("weekend"))),
    rule(morph_pipeline(["на следующей неделе"])
         .interpretation(Day.rel.const("nextweek"))),
    rule(normalized("следующий").optional(), eq(".").optional(), WEEKDAY),
    rule(eq("след"), WEEKDAY),
).interpretation(Day)  # fmt: skip
# --- grammar: end ---

TIME_PARSER = Parser(TIME)
DAY_PARSER = Parser(DAY)


def _clock(c: Any) -> tuple[int, int] | str | None:
    """(hour, minute) of a Clock fact by the project's hour policy; "ambiguous"; None."""
    if c.half is not None:
        return understanding._resolve(c.half - 1 or 12, 30, c.qual, True)
    if c.to is not None:
        return understanding._resolve((c.hour - 1) or 12, 60 - c.to, c.qual, True)
    if c.hour is None:
        return None
    return understanding._resolve(c.hour, c.minute, c.qual, bool(c.unit))


def _hm(t: tuple[int, int]) -> str:
    return f"{t[0] % 24:02d}:{t[1]:02d}"


def _day_of(d: Any, today: dt.date) -> dt.date | None:
    if d.month is not None and d.day is not None:
        day = d.day + (20 if d.source == "двадцать" else 30 if d.source == "тридцать" else 0)
        year = d.year if d.year is None or d.year > 100 else 2000 + d.year
        try:
            date = dt.date(year or today.year, d.month, day)
        except ValueError:
            return None
        if year is None and date < today:
            date = date.replace(year=today.year + 1)
        return date
    if d.rel is not None:
        shift = {"сегодня": 0, "завтра": 1, "послезавтра": 2, "послепослезавтра": 3}.get(d.rel)
        if shift is not None:
            return today + dt.timedelta(days=shift)
        if d.rel == "weekend":
            return today + dt.timedelta(days=(5 - today.weekday()) % 7)
        return today + dt.timedelta(days=7 - today.weekday())  # next week's Monday
    if d.unit is not None:
        n = d.after_n if d.after_n is not None else 1
        return today + dt.timedelta(days=n * (7 if d.unit == "неделя" else 1))
    if d.weekday is not None:
        return today + dt.timedelta(days=(d.weekday - today.weekday() - 1) % 7 + 1)
    return None


_ORDER = {"range": 0, "after": 1, "before": 1, "at": 2, "bare": 2, "noon": 3}


def extract(text: str, now: dt.datetime) -> tuple[str | None, str | None]:
    """(ISO day, time notation of bench/nlu.py) read by the yargy grammar."""
    text = text.lower()
    days = list(DAY_PARSER.findall(text))
    times = []
    for m in TIME_PARSER.findall(text):
        over = [d for d in days if d.span.start < m.span.stop and m.span.start < d.span.stop]
        if over and not text[m.span.start :].startswith(("в ", "во ", "к ")):
            continue
        days = [d for d in days if d not in over]
        times.append(m)
    found = [(d, _day_of(d.fact, now.date())) for d in days]
    found = [(d, v) for d, v in found if v is not None]
    day = None
    dated = [v for d, v in found if d.fact.month is not None]
    if dated:
        day = dated[0]
    elif found:
        values = {v for _, v in found}
        if len(values) == 1:
            day = found[0][1]
        elif " или " in text[found[0][0].span.start : found[-1][0].span.stop]:
            day = None
        else:
            target = [v for d, v in found if text[: d.span.start].rstrip().endswith(" на")]
            day = target[-1] if target else found[0][1]
    best: tuple[int, str | None] = (9, None)
    ambiguous = False
    for m in times:
        s = m.fact
        kind = s.kind or "bare"
        if kind in _ORDER:
            if _ORDER[kind] >= best[0]:
                continue
            a = _clock(s.start) if s.start is not None else None
            b = _clock(s.end) if s.end is not None else None
            if kind in ("at", "bare") and isinstance(a, tuple) and s.extra is not None:
                if s.start.minute is None and s.start.half is None and s.start.to is None:
                    a = understanding._resolve(s.start.hour, s.extra, s.start.qual, True)
            if kind == "noon":
                best = (3, "12:00")
            elif kind == "range":
                if s.start.qual is None and s.end is not None and s.end.qual is not None:
                    a = understanding._resolve(s.start.hour or 0, s.start.minute, s.end.qual, True)
                if a == "ambiguous" and s.start.hour is not None:
                    a = (s.start.hour, s.start.minute or 0)
                if b == "ambiguous" and s.end.hour is not None:
                    b = (s.end.hour, s.end.minute or 0)
                if isinstance(a, tuple) and isinstance(b, tuple):
                    if b <= a and b[0] + 12 < 24 and s.end.qual is None:
                        b = (b[0] + 12, b[1])
                    if b > a:
                        best = (0, f"{_hm(a)}-{_hm(b)}")
            elif kind == "after" and isinstance(a, tuple):
                best = (1, f"{_hm(a)}-")
            elif kind == "before" and isinstance(b, tuple):
                best = (1, f"-{_hm(b)}")
            elif kind in ("at", "bare"):
                c = s.start
                if kind == "bare" and not (c.unit or c.qual or c.minute is not None or c.half
                                           or c.to):  # fmt: skip
                    continue
                if (
                    kind == "at"
                    and text[m.span.start :].startswith("на ")
                    and not (c.unit or c.qual or c.minute is not None)
                ):
                    continue  # «на 5 месяце»: «на» + a bare number is no time
                if a == "ambiguous":
                    ambiguous = True
                elif isinstance(a, tuple):
                    best = (2, _hm(a))
        elif best[1] is None and not ambiguous and best[0] > 4:
            best = (4, kind)
    return (day.isoformat() if day else None), best[1]


def grammar_lines() -> int:
    """Non-blank lines between the grammar markers, plus the resolving functions below."""
    src = Path(__file__).read_text(encoding="utf-8")
    body = src[src.index("# --- grammar: begin") : src.index("TIME_PARSER = ")]
    resolve = src[src.index("def _clock(") : src.index("def grammar_lines(")]
    return sum(bool(line.strip()) for line in (body + resolve).splitlines())


def _bench(name: str, run: Any, cases: list[dict[str, Any]], repeat: int, show: bool) -> None:
    run(cases[0])  # warm-up: models, dictionaries, the parsers' first use
    preds = []
    for case in cases:
        day, tm = run(case)
        preds.append({"intents": set(), "service": None, "day": day, "time": tm,
                      "phone": None, "name": None})  # fmt: skip
    timings: list[float] = []
    for _ in range(repeat):
        for case in cases:
            t0 = time.perf_counter()
            run(case)
            timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    for label, subset in (("all", None), ("ru", "ru")):
        pairs = [(c, p) for c, p in zip(cases, preds, strict=True)
                 if subset is None or c.get("lang", "ru") == subset]  # fmt: skip
        counts = score([c for c, _ in pairs], [p for _, p in pairs])
        row = []
        for f in ("day", "time"):
            p, r, f1 = prf(*counts[f])
            row.append(f"{f} P {p:.3f} R {r:.3f} F1 {f1:.3f}")
        wrong = [(c, p) for c, p in pairs if p["time"] is not None and p["time"] != c.get("time")]
        print(f"  {name:<12} {label:<3} {len(pairs):>3} msgs  " + "   ".join(row)
              + f"   WRONG TIMES {len(wrong)}")  # fmt: skip
        if show and label == "all":
            for c, p in pairs:
                if p["day"] != c.get("day") or p["time"] != c.get("time"):
                    print(f"    - {c['text']!r}: day want {c.get('day')} got {p['day']}; "
                          f"time want {c.get('time')} got {p['time']}")  # fmt: skip
    print(f"  {name:<12} per message after warm-up: p50 {statistics.median(timings):.2f} ms, "
          f"p99 {timings[int(len(timings) * 0.99) - 1]:.2f} ms ({len(timings)} calls)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes after warm-up")
    parser.add_argument("--show", action="store_true", help="print the misses")
    args = parser.parse_args()
    understanding.warm_up()

    def now_of(case: dict[str, Any]) -> dt.datetime:
        return dt.datetime.fromisoformat(case.get("now", NOW)).replace(tzinfo=TZ)

    def run_yargy(case: dict[str, Any]) -> tuple[str | None, str | None]:
        return extract(case["text"], now_of(case))

    def run_rules(case: dict[str, Any]) -> tuple[str | None, str | None]:
        pred, _ = predict(understanding.understand, understanding.Service, case)
        return pred["day"], pred["time"]

    assert "lang" in inspect.signature(understanding.understand).parameters
    print(f"yargy grammar: {grammar_lines()} lines (rules + resolving the facts)")
    for path in (CORPUS, HOLDOUT, FRESH):
        cases = load_corpus(path)
        print(f"{path.name}:")
        _bench("yargy", run_yargy, cases, args.repeat, args.show)
        _bench("understand()", run_rules, cases, args.repeat, args.show)


if __name__ == "__main__":
    main()
