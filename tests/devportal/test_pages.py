"""The portal's browser pages: a real Chromium runs the official b24jssdk UMD build inside
the emulator's install page and the emulator records ``installFinish``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask import send_from_directory

from devportal import DevPortal
from devportal import Portal
from tests.plugins.live import LiveServer
from tests.waiting import deadline_seconds
from tests.waiting import wait_for

VENDOR = Path(__file__).parents[2] / "b24app" / "static" / "vendor" / "b24jssdk"

INSTALLER = """<!doctype html><html><head><meta charset="utf-8">
<script src="/vendor/b24jssdk.umd.min.js"></script></head>
<body><div id="out" style="height:420px">installing…</div><script>
(async function () {
  const out = document.getElementById('out');
  try {
    const $b24 = await B24Js.initializeB24Frame();
    const lang = $b24.getLang();
    const placement = $b24.placement.placement;
    const user = await $b24.actions.v2.call.make({method: 'user.current', params: {}});
    await $b24.parent.resizeWindow(800, 432);
    await $b24.parent.setTitle('Installer ' + lang);
    if ($b24.isInstallMode) { await $b24.installFinish(); }
    out.textContent = 'done ' + lang + ' ' + placement + ' ' + user.getData().result.ID;
  } catch (e) {
    out.textContent = 'error ' + (e && (e.code || e.message) || e);
  }
})();
</script></body></html>"""


@pytest.fixture
def frame_app(app_port: int) -> Iterator[LiveServer]:
    app = Flask("installer-under-test")

    @app.route("/install/", methods=["POST"])
    def installer() -> str:
        return INSTALLER

    @app.route("/install/events", methods=["POST"])
    def events() -> str:
        return "ok"

    @app.route("/vendor/<path:name>")
    def vendor(name: str):  # type: ignore[no-untyped-def]
        return send_from_directory(VENDOR, name)

    server = LiveServer(app, app_port).start()
    yield server
    server.stop()


@pytest.mark.browser
def test_install_finish_through_the_frame_protocol(
    emulator: DevPortal, portal: Portal, frame_app: LiveServer, page: Any
) -> None:
    # The session's Chromium (tests/plugins/browser.py): a second sync_playwright() in the
    # same process fails once another test has started the first one.
    sync_api = pytest.importorskip("playwright.sync_api")
    page.goto(portal.page_url("install"))
    frame = page.frame_locator("#app-frame")
    sync_api.expect(frame.locator("#out")).to_contain_text(
        "done", timeout=deadline_seconds() * 1000
    )
    assert frame.locator("#out").inner_text() == "done ru DEFAULT 1"
    # Each command reaches the parent page, which reports it with its own fetch: wait for both.
    wait_for(
        lambda: (
            {"setInstallFinish", "resizeWindow"} <= {m["command"] for m in portal.frame_messages}
        )
    )
    assert portal.install_finished
    resize = next(m for m in portal.frame_messages if m["command"] == "resizeWindow")
    assert resize["params"]["height"] == 432
    sync_api.expect(page.locator("#b24-title")).to_have_text(
        "Installer ru", timeout=deadline_seconds() * 1000
    )
    wait_for(lambda: page.locator("#app-frame").evaluate("f => f.style.height") == "432px")
    assert emulator.deliveries(kind="event", name="ONAPPINSTALL", portal=portal)
