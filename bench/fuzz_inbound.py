"""Hostile-input fuzzing of every inbound POST route, counting the answers (issue 10, item 4).

Builds the app on a temp SQLite file and a private ``redis-server``, stores two portals, then
posts hypothesis-generated bodies through the Flask test client and counts the status classes:

* ``forms``: bracket-key soup incl. non-ASCII digits (``auth[²]``, ``auth[٠]``), leading-zero
  indices and up to 10 levels of brackets, on a random route;
* ``deep``: ``PLACEMENT_OPTIONS`` nested 1–50 000 levels with portal A's real credentials;
* ``parser``: :func:`b24app.bitrix.payload.parse_php_form` alone (result or MalformedPayload).

Prints cases tried and how many answered 5xx (the target is 0) per family.

    python bench/fuzz_inbound.py [--examples 1000]
"""

from __future__ import annotations

import argparse
import collections
import logging
import string
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from b24app import context
from b24app import create_app
from b24app.bitrix.payload import encode_php_form
from b24app.bitrix.payload import MalformedPayload
from b24app.bitrix.payload import parse_php_form
from b24app.config import Settings
from b24app.storage.migrate import upgrade
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from devportal.demo import _start_redis

NON_ASCII_DIGITS = "²³¹٠١٢۰۱০১߀०੦௦๐႐𝟎𝟘０"
PORTALS = {"a" * 32: "token-of-portal-a-0001", "b" * 32: "token-of-portal-b-0002"}
SKIP = ("/static", "/health", "/metrics")

keys = st.text(alphabet=string.ascii_letters + string.digits + "[]_%&=" + NON_ASCII_DIGITS,
               min_size=1, max_size=40)  # fmt: skip
bracket_keys = st.builds(
    lambda head, parts: head + "".join(f"[{p}]" for p in parts),
    st.sampled_from(["auth", "data", "document_id", "PLACEMENT_OPTIONS", "properties", "event"]),
    st.lists(st.text(alphabet=string.digits + NON_ASCII_DIGITS + "ab_", max_size=4), max_size=10),
)
forms = st.dictionaries(st.one_of(keys, bracket_keys), st.text(max_size=60), max_size=30)
deep_json = st.one_of(
    st.builds(
        lambda depth, opener: opener * depth,
        st.integers(min_value=1, max_value=50_000),
        st.sampled_from(["[", '{"a":', '[{"ID":']),
    ),
    # balanced, valid JSON (a list, so never a usable PLACEMENT_OPTIONS object)
    st.integers(min_value=1, max_value=50_000).map(lambda depth: "[" * depth + "]" * depth),
)


def routes(app: Any) -> list[str]:
    out = []
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and not rule.rule.startswith(SKIP):
            path = rule.rule
            for arg in rule.arguments:
                for form in (f"<{arg}>", f"<path:{arg}>", f"<string:{arg}>"):
                    path = path.replace(form, "x")
            out.append(path)
    return sorted(set(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="cases per family")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the app logs every 4xx; only the counts matter here
    with tempfile.TemporaryDirectory() as tmp:
        redis_proc, redis_url = _start_redis(Path(tmp))
        try:
            run(Path(tmp), redis_url, args.examples)
        finally:
            redis_proc.kill()


def run(tmp: Path, redis_url: str, examples: int) -> None:
    secret = "fuzz-secret-0123456789abcdef0123456789"
    settings = Settings(database_url=f"sqlite:///{tmp / 'fuzz.sqlite'}", redis_url=redis_url,
                        secret_key=secret, client_secret=secret,
                        allow_insecure_endpoints=True, rest_timeout=2.0)  # fmt: skip
    upgrade(settings.database_url)
    services = context.build_services(settings)
    with services.db() as session:
        for member, token in PORTALS.items():
            upsert_install(session, InstallAuth(
                member_id=member, domain=f"{member[:4]}.bitrix24.ru",
                client_endpoint=f"https://{member[:4]}.bitrix24.ru/rest/",
                application_token=token, access_token="x" * 32, refresh_token="y" * 32))  # fmt: skip
    app = create_app({"TESTING": True, "B24APP_SERVICES": services}, settings=settings)
    client = app.test_client()
    inbound = routes(app)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    fuzz = hsettings(max_examples=examples, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))  # fmt: skip

    def record(family: str, status: int) -> None:
        counts[family]["cases"] += 1
        counts[family][f"{status // 100}xx"] += 1

    @fuzz
    @given(form=forms, index=st.integers(min_value=0, max_value=10_000))
    def fuzz_forms(form: dict[str, str], index: int) -> None:
        body = encode_php_form(form) if form else "x"
        response = client.post(inbound[index % len(inbound)], data=body,
                               content_type="application/x-www-form-urlencoded")  # fmt: skip
        record("forms", response.status_code)

    @fuzz
    @given(options=deep_json, index=st.integers(min_value=0, max_value=10_000))
    def fuzz_deep(options: str, index: int) -> None:
        member, token = next(iter(PORTALS.items()))
        form = {"member_id": member, "APPLICATION_TOKEN": token, "AUTH_ID": "x" * 32,
                "PLACEMENT": "CRM_LEAD_DETAIL_TAB", "PLACEMENT_OPTIONS": options}  # fmt: skip
        record("deep", client.post(inbound[index % len(inbound)], data=form).status_code)

    @fuzz
    @given(st.lists(st.tuples(st.one_of(keys, bracket_keys), st.text(max_size=5)), max_size=20))
    def fuzz_parser(pairs: list[tuple[str, str]]) -> None:
        try:
            parse_php_form(pairs)
            record("parser", 200)
        except MalformedPayload:
            record("parser", 400)
        except Exception:
            record("parser", 500)

    for test in (fuzz_forms, fuzz_deep, fuzz_parser):
        test()
    print(f"{len(inbound)} inbound POST routes: {', '.join(inbound)}")
    print(f"{'family':<8}{'cases':>8}{'2xx':>7}{'4xx':>7}{'5xx':>7}")
    for family, c in counts.items():
        print(f"{family:<8}{c['cases']:>8}{c['2xx']:>7}{c['4xx']:>7}{c['5xx']:>7}")
    services.dispose()


if __name__ == "__main__":
    main()
