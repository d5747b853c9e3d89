"""A separate process that calls ``user.current`` on one portal, a round at a time (token-race
tests).

    python -m tests.reliability.token_caller <member_id> <calls>

Settings come from ``B24APP_*``. Each line on stdin starts a round of ``calls`` calls; the
process answers ``done`` on stdout when every call of the round was answered (a test writes
the line to every process at once, so their first calls, and so their refreshes, happen
together). End of stdin ends the process; exit code 0 = every call answered.
"""

from __future__ import annotations

import sys

from b24app import context
from b24app.config import Settings


def main(argv: list[str]) -> int:
    member_id, calls = argv[0], int(argv[1])
    services = context.build_services(Settings.from_env())
    client = services.bitrix(member_id)
    print("ready", flush=True)
    for _round in sys.stdin:
        for _ in range(calls):
            result = client.call("user.current")
            if not isinstance(result, dict) or not result.get("ID"):
                print(f"unexpected answer {result!r}", file=sys.stderr)
                return 1
        print("done", flush=True)
    services.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
