"""The real install in a real browser: the emulator's portal page frames our installer, the
page registers the app and calls ``installFinish`` through the official b24jssdk."""

from __future__ import annotations

import time

import pytest

from b24app.handlers.definitions import EVENTS
from tests.plugins.browser import screenshot
from tests.waiting import deadline_seconds


@pytest.mark.browser
def test_installer_page_finishes_the_install(emulator, live_app, portal, page, run_jobs) -> None:
    """Opening the app for the first time installs it; the portal records installFinish."""
    page.goto(portal.page_url("install"))
    frame = page.frame_locator("#app-frame")
    card = frame.locator("#install")
    card.wait_for(timeout=deadline_seconds() * 1000)
    assert "установлено" in card.inner_text()
    deadline = time.monotonic() + deadline_seconds()
    while not portal.install_finished and time.monotonic() < deadline:
        time.sleep(0.05)
    screenshot(page, "install-finished")
    assert portal.install_finished, "installFinish was not called in the page"
    # The page marks the card after the parent has answered installFinish, a moment later.
    frame.locator("#install[data-state='finished']").wait_for(timeout=deadline_seconds() * 1000)
    assert any(m.get("command") for m in portal.frame_messages)
    run_jobs()
    assert {e["event"] for e in portal.events} >= set(EVENTS)
