"""A free TCP port for a server that binds it a moment later (the demo's Redis, the tests'
servers and subprocesses).

Asking the kernel for port 0 and closing the socket hands out a port from the *ephemeral*
range, the one outgoing connections draw their local ports from: on a busy machine one of the
many HTTP requests in flight can take that port before the server binds it ("Address already
in use"). So the port is drawn at random from below that range, where only listening servers
live, and checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANDOM = random.SystemRandom()  # independent of any seeded global random (hypothesis, tests)
LOWEST = 12_000  # above the well-known services a development machine runs (5432, 6379, 8080…)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux), else the IANA one."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49_152, 65_535


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago, outside the ephemeral range."""
    low, high = ephemeral_range()
    bottom, top = (LOWEST, low) if low - LOWEST >= 1_000 else (high + 1, 65_536)
    for _ in range(100):
        port = _RANDOM.randrange(bottom, top)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a crowded range: let the kernel choose after all
        s.bind((host, 0))
        return int(s.getsockname()[1])
