"""Ports for servers that bind a moment later come from outside the ephemeral range, where
outgoing connections cannot take them first."""

from __future__ import annotations

import socket

import pytest

from devportal import ports


def test_ports_come_from_below_the_ephemeral_range_and_are_free() -> None:
    low, _ = ports.ephemeral_range()
    picked = {ports.free_port() for _ in range(20)}
    if low - ports.LOWEST >= 1_000:
        assert all(ports.LOWEST <= p < low for p in picked)
    assert len(picked) > 1  # drawn at random, not one fixed port
    for port in picked:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_low_ephemeral_range_sends_the_ports_above_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (2_000, 50_000))
    assert all(50_000 < ports.free_port() < 65_536 for _ in range(10))
