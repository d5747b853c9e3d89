"""A separate process that calls ``user.current`` on one portal in a loop (token-race tests).

    python -m tests.reliability.token_caller <member_id> <calls> <start_at_epoch>

Settings come from ``B24APP_*``; every process waits for ``start_at`` so their first calls,
and so their refreshes, happen together. Exit code 0 = every call answered.
"""

from __future__ import annotations

import sys
import time

from b24app import context
from b24app.config import Settings


def main(argv: list[str]) -> int:
    member_id, calls, start_at = argv[0], int(argv[1]), float(argv[2])
    services = context.build_services(Settings.from_env())
    client = services.bitrix(member_id)
    time.sleep(max(0.0, start_at - time.time()))
    for _ in range(calls):
        result = client.call("user.current")
        if not isinstance(result, dict) or not result.get("ID"):
            print(f"unexpected answer {result!r}", file=sys.stderr)
            return 1
    services.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
