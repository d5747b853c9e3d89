"""The ``db`` mark (tests/conftest.py) that picks the PostgreSQL pass of ./dev test: a test
reaching the database through its fixtures has it, the others do not."""

from __future__ import annotations

import pytest

from devportal import DevPortal


def test_a_test_on_the_database_is_marked(request: pytest.FixtureRequest, client) -> None:  # type: ignore[no-untyped-def]
    assert request.node.get_closest_marker("db") is not None


def test_a_test_without_the_database_is_not_marked(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("db") is None


def test_the_emulator_alone_needs_no_database(
    request: pytest.FixtureRequest, emulator: DevPortal
) -> None:
    """The emulator's own tests run once, not again on PostgreSQL."""
    assert "database_url" not in request.fixturenames
    assert request.node.get_closest_marker("db") is None
    assert emulator.portal_by_member("nobody") is None
