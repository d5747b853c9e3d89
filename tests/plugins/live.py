"""Live fixtures: the Bitrix24 emulator and the Flask app served over real HTTP.

* ``emulator`` — a started :class:`devportal.DevPortal` whose client id/secret match
  the ``settings`` fixture and whose app base URL is ``public_url`` (no database needed);
* ``live_app`` — the Flask app on ``app_port`` (what ``settings.public_url`` points at),
  served by a threaded werkzeug server in a background thread;
* ``portal`` — one emulated portal (``salon``, Russian, Europe/Moscow), app not installed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import make_server
from werkzeug.serving import WSGIRequestHandler

from b24app.config import Settings
from devportal import DevPortal
from devportal import Portal
from tests.conftest import CLIENT_ID
from tests.conftest import CLIENT_SECRET
from tests.waiting import deadline_seconds


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class LiveServer:
    """A WSGI app served on 127.0.0.1:<port> in a daemon thread."""

    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        try:
            self.server: BaseWSGIServer = make_server(
                "127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler
            )
        except SystemExit as exc:
            # werkzeug exits the process when the port is taken; a SystemExit inside a
            # fixture derails pytest's fixture bookkeeping for every later test of the
            # worker, so it becomes this test's error only.
            raise OSError(f"127.0.0.1:{port} is taken") from exc
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def emulator(public_url: str) -> Iterator[DevPortal]:
    # A loaded CI machine may take seconds to answer a delivery: the test's deadline, not
    # the emulator's 10 s, bounds both a delivery and a wait for the deliveries to end.
    emu = DevPortal(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        app_base_url=public_url,
        delivery_timeout=deadline_seconds(),
        idle_timeout=deadline_seconds(),
    )
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def live_app(services: Any, settings: Settings, app_port: int) -> Iterator[LiveServer]:
    from b24app import create_app

    app = create_app({"TESTING": True, "B24APP_SERVICES": services}, settings=settings)
    server = LiveServer(app, app_port).start()
    yield server
    server.stop()


@pytest.fixture
def portal(emulator: DevPortal) -> Portal:
    return emulator.create_portal("salon", lang="ru", time_zone="Europe/Moscow")
