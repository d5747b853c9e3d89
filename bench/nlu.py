"""The assistant's understanding measured on an annotated corpus (issue 21).

``bench/nlu_corpus.jsonl``: one message a line with what it means — ``intents``, ``service``,
``day`` (ISO), ``time`` (``HH:MM``, a window ``HH:MM-HH:MM``, ``HH:MM-`` = after, ``-HH:MM`` =
before), ``phone`` (E.164), ``name``, ``safety`` (medical, legal, complaint, refund) —, the
business ``kind`` whose services it is read against, the portal's ``now`` (default Monday
7 Dec 2026 10:00 Moscow), ``expect`` (the slot just asked for) and ``src``: ``own`` or the peer
suite whose facts the case carries (facebook/duckling ``Duckling/Time/RU/Corpus.hs``,
wanasit/chrono ``test/ru``). A field left out means "nothing of the kind in the message".

Prints per-field precision/recall/F1, WRONG TIMES (a time given that the message does not
mean: a wrong clock, a window for an exact time or the reverse), safety recall (a safety
message must end in a hand-off intent), the per-message cost after warm-up (p50/p99 ms),
the first call's cost (model load) and the process's peak RSS.

    python bench/nlu.py [--show FIELD] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

CORPUS = Path(__file__).with_name("nlu_corpus.jsonl")
NOW = "2026-12-07T10:00"
TZ = ZoneInfo("Europe/Moscow")
FIELDS = ("intents", "service", "day", "time", "phone", "name")
INTENTS = ("operator", "complaint", "sensitive", "back", "confirm", "cancel", "greeting",
           "reschedule")  # fmt: skip

# The services a portal of each kind would configure (names ru/en and synonyms).
SERVICES: dict[str, list[dict[str, Any]]] = {
    "salon": [
        {"code": "manicure", "name": {"ru": "Маникюр", "en": "Manicure"},
         "synonyms": ["ногти", "маник", "nails", "маникюр с покрытием"]},
        {"code": "pedicure", "name": {"ru": "Педикюр", "en": "Pedicure"}, "synonyms": []},
        {"code": "haircut", "name": {"ru": "Стрижка", "en": "Haircut"},
         "synonyms": ["подстричься", "постричься", "подстричь", "стричь", "hair", "челка"]},
        {"code": "coloring", "name": {"ru": "Окрашивание волос", "en": "Hair colouring"},
         "synonyms": ["покрасить волосы", "красить волосы", "покраска волос", "покраска", "окрашивание",
                      "hair color", "color", "colour", "colouring"]},
        {"code": "brows", "name": {"ru": "Брови", "en": "Brows"},
         "synonyms": ["коррекция бровей", "покрасить брови", "оформление бровей",
                      "ламинирование бровей", "brow"]},
        {"code": "massage", "name": {"ru": "Массаж", "en": "Massage"}, "synonyms": []},
    ],
    "clinic": [
        {"code": "therapist", "name": {"ru": "Приём терапевта", "en": "GP appointment"},
         "synonyms": ["терапевт", "врач общей практики"]},
        {"code": "dentist", "name": {"ru": "Стоматолог", "en": "Dentist"},
         "synonyms": ["зубы", "зуб", "почистить зубы", "пломба", "лечить зуб"]},
        {"code": "ultrasound", "name": {"ru": "УЗИ", "en": "Ultrasound"}, "synonyms": []},
        {"code": "tests", "name": {"ru": "Анализы", "en": "Lab tests"},
         "synonyms": ["анализ крови", "сдать кровь", "blood test", "анализ"]},
    ],
    "trainer": [
        {"code": "personal", "name": {"ru": "Персональная тренировка", "en": "Personal training"},
         "synonyms": ["тренировка", "персоналка", "заниматься", "силовые"]},
        {"code": "group", "name": {"ru": "Групповое занятие", "en": "Group class"},
         "synonyms": ["группа", "группу", "групповая"]},
        {"code": "stretching", "name": {"ru": "Растяжка", "en": "Stretching"},
         "synonyms": ["стретчинг"]},
    ],
}  # fmt: skip


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def time_of(when: Any) -> str | None:
    """The corpus's time notation for a :class:`When`."""
    if when is None:
        return None

    def hm(t: dt.time | None) -> str:
        return t.strftime("%H:%M") if t else ""

    if when.at is not None:
        return hm(when.at)
    if when.earliest is None and when.latest is None:
        return None
    return f"{hm(when.earliest)}-{hm(when.latest)}"


def predict(understand: Any, service_cls: Any, case: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    services = [service_cls.from_settings(s) for s in SERVICES[case.get("kind", "salon")]]
    now = dt.datetime.fromisoformat(case.get("now", NOW)).replace(tzinfo=TZ)
    kwargs: dict[str, Any] = {"now": now, "services": services, "expect": case.get("expect")}
    params = inspect.signature(understand).parameters
    if "lang" in params:
        kwargs["lang"] = case.get("lang", "ru")
    if "safety" in params:  # the business kind's default hand-off vocabulary
        from b24app.assistant.understanding import safety_vocabulary

        kwargs["safety"] = safety_vocabulary(case.get("kind", "salon"))
    u = understand(case["text"], **kwargs)
    when = u.when
    return {
        "intents": set(u.intents) & set(INTENTS),
        "service": u.service,
        "day": when.day.isoformat() if when and when.day else None,
        "time": time_of(when),
        "phone": u.phone,
        "name": u.name,
    }, u


def score(
    cases: list[dict[str, Any]], preds: list[dict[str, Any]]
) -> dict[str, tuple[int, int, int]]:
    counts = {f: [0, 0, 0] for f in FIELDS}  # tp, fp, fn
    for case, pred in zip(cases, preds, strict=True):
        expected = set(case.get("intents") or ())
        got = pred["intents"]
        counts["intents"][0] += len(expected & got)
        counts["intents"][1] += len(got - expected)
        counts["intents"][2] += len(expected - got)
        for f in FIELDS[1:]:
            exp, val = case.get(f), pred[f]
            if val is not None and val == exp:
                counts[f][0] += 1
            else:
                counts[f][1] += val is not None
                counts[f][2] += exp is not None
    return {f: (c[0], c[1], c[2]) for f, c in counts.items()}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show", choices=FIELDS + ("safety", "all"), help="print the misses")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes after warm-up")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    from b24app.assistant import understanding as module

    cases = load_corpus(args.corpus)
    warm_s = 0.0
    if hasattr(module, "warm_up"):  # the models a worker loads once at start
        t0 = time.perf_counter()
        module.warm_up()
        warm_s = time.perf_counter() - t0
    rss_warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first = time.perf_counter()
    predict(module.understand, module.Service, cases[0])  # loads whatever models it uses
    load_s = time.perf_counter() - started
    first_s = time.perf_counter() - first
    results = [predict(module.understand, module.Service, c) for c in cases]
    preds = [r[0] for r in results]
    timings: list[float] = []
    for _ in range(args.repeat):
        for case in cases:
            t0 = time.perf_counter()
            predict(module.understand, module.Service, case)
            timings.append((time.perf_counter() - t0) * 1000)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    counts = score(cases, preds)
    own = sum(c["src"].startswith("own") for c in cases)
    print(f"corpus: {len(cases)} messages ({own} own, {len(cases) - own} carried from peer suites)")
    print(f"{'field':<9} {'prec':>6} {'recall':>7} {'F1':>6}   tp/fp/fn")
    total = [0, 0, 0]
    for f in FIELDS:
        tp, fp, fn = counts[f]
        total = [total[0] + tp, total[1] + fp, total[2] + fn]
        p, r, f1 = prf(tp, fp, fn)
        print(f"{f:<9} {p:6.3f} {r:7.3f} {f1:6.3f}   {tp}/{fp}/{fn}")
    p, r, f1 = prf(*total)
    print(f"{'all':<9} {p:6.3f} {r:7.3f} {f1:6.3f}")
    wrong_times = [(c, p) for c, p in zip(cases, preds, strict=True)
                   if p["time"] is not None and p["time"] != c.get("time")]  # fmt: skip
    print(f"WRONG TIMES: {len(wrong_times)}")
    safety = [(c, p) for c, p in zip(cases, preds, strict=True) if c.get("safety")]
    handed = [c for c, p in safety if p["intents"] & {"operator", "complaint", "sensitive"}]
    print(f"safety recall: {len(handed)}/{len(safety)} = {len(handed) / max(1, len(safety)):.3f}")
    false_alarm = [c for c, p in zip(cases, preds, strict=True)
                   if not c.get("safety") and p["intents"] & {"complaint", "sensitive"}
                   and not set(c.get("intents") or ()) & {"complaint", "sensitive"}]  # fmt: skip
    print(f"safety false alarms: {len(false_alarm)}")
    topics = [(c, u) for c, (_, u) in zip(cases, results, strict=True) if c.get("safety")]
    if topics and hasattr(topics[0][1], "topic"):
        right = sum(getattr(u, "topic", None) == c["safety"] for c, u in topics)
        print(f"safety topic right: {right}/{len(topics)}")
    timings.sort()
    print(f"per message after warm-up: p50 {statistics.median(timings):.2f} ms, "
          f"p99 {timings[int(len(timings) * 0.99) - 1]:.2f} ms ({len(timings)} calls)")  # fmt: skip
    print(f"import + warm-up + first call: {load_s:.2f} s (warm-up {warm_s:.2f} s, first call "
          f"{first_s * 1000:.1f} ms); RSS at start {rss0 / 1024:.0f} MB, after warm-up "
          f"{rss_warm / 1024:.0f} MB, peak {rss / 1024:.0f} MB")  # fmt: skip
    if args.show:
        for case, pred in zip(cases, preds, strict=True):
            fields = FIELDS if args.show == "all" else (args.show,)
            bad = []
            for f in fields:
                if f == "safety":
                    continue
                exp = set(case.get(f) or ()) if f == "intents" else case.get(f)
                if pred[f] != exp:
                    bad.append(f"{f}: want {exp!r} got {pred[f]!r}")
            if args.show == "safety" and case.get("safety") and case in [c for c, _ in safety]:
                if case not in handed:
                    bad.append(f"safety {case['safety']} not handed off: {sorted(pred['intents'])}")
            if bad:
                print(f"- {case['text']!r}: " + "; ".join(bad))


if __name__ == "__main__":
    main()
