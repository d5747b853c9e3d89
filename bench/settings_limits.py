"""What one client message costs the assistant's rules with the largest script the settings
allow, against the 40 000 synonyms that were allowed before issue 19.

The rules match every service name and synonym against the message, on workers shared by all
portals; the settings now allow 50 services, 20 synonyms per service and 200 in all (64
characters each). Prints the median and worst time of ``understand()`` on a 2 000-character
message for each script, and the script's share of a model prompt (characters).

    python bench/settings_limits.py [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from zoneinfo import ZoneInfo

from marshmallow import ValidationError

from b24app.assistant.service import script_of
from b24app.assistant.understanding import understand
from b24app.settings import MAX_SERVICES
from b24app.settings import MAX_SYNONYMS
from b24app.settings import MAX_SYNONYMS_PER_SERVICE
from b24app.settings import PortalSettingsSchema

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=ZoneInfo("Europe/Moscow"))
MESSAGE = ("здравствуйте хотела бы записаться на что нибудь приятное " * 40)[:2000]


def _services(n_services: int, per_service: int) -> list[dict[str, object]]:
    return [
        {"code": f"s{i}", "name": {"ru": f"Услуга номер {i}", "en": f"Service {i}"},
         "synonyms": [f"синоним{i}x{j}".ljust(64, "ж") for j in range(per_service)]}
        for i in range(n_services)
    ]  # fmt: skip


def _time(services: list[dict[str, object]], runs: int) -> list[float]:
    script, _ = script_of({"assistant": {"services": services}}, "ru")
    taken = []
    for _ in range(runs):
        started = time.perf_counter()
        understand(MESSAGE, now=NOW, services=script.services, expect="service")
        taken.append(time.perf_counter() - started)
    return taken


def _prompt_chars(services: list[dict[str, object]]) -> int:
    script, _ = script_of({"assistant": {"services": services}}, "ru")
    return len(json.dumps({s.code: list(s.names + s.synonyms) for s in script.services},
                          ensure_ascii=False))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    largest = _services(MAX_SERVICES, MAX_SYNONYMS // MAX_SERVICES)
    PortalSettingsSchema().load({"assistant": {"services": largest}})  # allowed
    before = _services(1, 40_000)
    try:
        PortalSettingsSchema().load({"assistant": {"services": before}})
        print("40 000 synonyms: ACCEPTED (the limit is missing)")
    except ValidationError as err:
        print(f"40 000 synonyms: refused at save: {err.messages}")
    print(f"limits: {MAX_SERVICES} services, {MAX_SYNONYMS_PER_SERVICE} synonyms per service,"
          f" {MAX_SYNONYMS} in all")  # fmt: skip
    for name, services in (("largest allowed script", largest),
                           ("40 000 synonyms stored before the limits (cut when read)", before),
                           ("40 000 synonyms matched whole (the old cost)", None)):  # fmt: skip
        if services is None:
            from b24app.assistant.understanding import Service

            whole = [Service.from_settings(s) for s in before]
            taken = []
            for _ in range(max(1, args.runs // 5)):
                started = time.perf_counter()
                understand(MESSAGE, now=NOW, services=whole, expect="service")
                taken.append(time.perf_counter() - started)
            prompt = len(json.dumps({s.code: list(s.names + s.synonyms) for s in whole},
                                    ensure_ascii=False))  # fmt: skip
        else:
            taken = _time(services, args.runs)
            prompt = _prompt_chars(services)
        print(
            f"{name}: understand() median {statistics.median(taken) * 1000:.1f} ms,"
            f" worst {max(taken) * 1000:.1f} ms; services in a model prompt: {prompt:,} chars"
        )


if __name__ == "__main__":
    main()
