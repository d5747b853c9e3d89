"""Consent gate benchmark: what asking ``may_message`` costs a send, and whether the stop
words cost the reply classifier anything.

1. Migrates a throw-away SQLite file (``--database`` a PostgreSQL URL otherwise), records
   ``--records`` consent records (opt-outs and advertising consents, 1 in 3 by chat only)
   over ``--clients`` clients of one portal, then times ``--lookups`` gate calls
   (``service`` and ``advertising`` alternately, a client by contact + chat) and counts their
   SQL statements.
2. Times :func:`b24app.assistant.understanding.classify_reply` over the NLU corpus
   (``bench/nlu_corpus.jsonl``) and counts how many of its messages it reads as an opt-out
   (none of the corpus is one: a false «СТОП» would silence a client).

    python bench/consent.py [--records 100000] [--clients 50000] [--lookups 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b24app.assistant.understanding import classify_reply  # noqa: E402
from b24app.assistant.understanding import warm_up  # noqa: E402
from b24app.consent.contact import Contact  # noqa: E402
from b24app.consent.policy import may_message  # noqa: E402
from b24app.storage.db import make_engine  # noqa: E402
from b24app.storage.db import make_session_factory  # noqa: E402
from b24app.storage.migrate import upgrade  # noqa: E402
from b24app.storage.models import ConsentKind  # noqa: E402
from b24app.storage.models import ConsentRecord  # noqa: E402
from b24app.storage.models import Portal  # noqa: E402
from b24app.storage.models import utc_now  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed(factory: object, records: int, clients: int) -> int:
    rng = random.Random(7)
    with factory() as session:  # type: ignore[operator]
        portal = Portal(member_id="bench", domain="bench.bitrix24.ru", client_endpoint="",
                        server_endpoint="")  # fmt: skip
        session.add(portal)
        session.flush()
        now = utc_now()
        rows = []
        for i in range(records):
            client = rng.randrange(1, clients + 1)
            by_chat = i % 3 == 0
            rows.append({
                "portal_id": portal.id, "kind": rng.choice((ConsentKind.OPT_OUT,
                                                             ConsentKind.ADVERTISING)),
                "contact_id": None if by_chat else client, "chat_id": 100_000 + client,
                "chat_user_id": 500_000 + client, "phone": None, "source": "chat",
                "channel": "telegrambot", "text": "СТОП",
                "recorded_at": now - dt.timedelta(seconds=rng.randrange(86400 * 365)),
            })  # fmt: skip
        session.execute(insert(ConsentRecord), rows)
        session.commit()
        return int(portal.id)


def bench_gate(url: str, records: int, clients: int, lookups: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    started = time.perf_counter()
    portal_id = seed(factory, records, clients)
    print(f"seeded {records:,} records over {clients:,} clients in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    statements = [0]
    event.listen(engine, "before_cursor_execute", lambda *a: statements.__setitem__(0,
                 statements[0] + 1))  # fmt: skip
    rng = random.Random(11)
    times: list[float] = []
    allowed = 0
    with factory() as session:
        for i in range(lookups):
            client = rng.randrange(1, clients + 1)
            who = Contact(contact_id=client, chat_id=100_000 + client)
            purpose = "service" if i % 2 else "advertising"
            t0 = time.perf_counter()
            allowed += may_message(session, portal_id, who, purpose)
            times.append((time.perf_counter() - t0) * 1000)
    print(
        f"may_message × {lookups:,}: p50 {statistics.median(times):.2f} ms, "
        f"p99 {pct(times, 0.99):.2f} ms, max {max(times):.2f} ms; "
        f"{statements[0] / lookups:.2f} SQL statements per call; {allowed:,} allowed"
    )


def bench_classifier() -> None:
    corpus = Path(__file__).with_name("nlu_corpus.jsonl")
    texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines() if line]
    warm_up(ner=False)
    times = []
    optouts = []
    for text in texts:
        t0 = time.perf_counter()
        verdict = classify_reply(text)
        times.append((time.perf_counter() - t0) * 1000)
        if verdict == "optout":
            optouts.append(text)
    print(
        f"classify_reply × {len(texts)} corpus messages: p50 {statistics.median(times):.3f} ms,"
        f" p99 {pct(times, 0.99):.3f} ms; read as an opt-out: {len(optouts)} {optouts[:5]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--database", default="", help="a database URL (default: SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/consent.sqlite"
        bench_gate(url, args.records, args.clients, args.lookups)
    bench_classifier()


if __name__ == "__main__":
    main()
