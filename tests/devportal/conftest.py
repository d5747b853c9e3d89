"""A stand-in app ("sink") on ``settings.public_url`` that records what the portal sends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask import request

from devportal import Portal
from tests.plugins.live import LiveServer


class Sink:
    """Every request the app side received: method, path, query and form (flat pairs)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.status = 200
        # path → gate: a request to a gated path is held until its gate is set (a slow app).
        self.gates: dict[str, threading.Event] = {}

    def find(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


@pytest.fixture
def sink(app_port: int) -> Iterator[Sink]:
    recorder = Sink()
    flask_app = Flask("sink")

    @flask_app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @flask_app.route("/<path:path>", methods=["GET", "POST"])
    def catch(path: str) -> tuple[str, int]:
        with recorder.lock:
            recorder.requests.append(
                {
                    "method": request.method,
                    "path": "/" + path,
                    "query": dict(request.args.items()),
                    "form": dict(request.form.items()),
                    "content_type": request.mimetype,
                }
            )
        gate = recorder.gates.get("/" + path)
        if gate is not None:
            gate.wait(30)
        return "ok", recorder.status

    server = LiveServer(flask_app, app_port).start()
    yield recorder
    server.stop()


class Rest:
    """Tiny REST caller for one portal with a token (what the app's client would send)."""

    def __init__(self, portal: Portal, token: str) -> None:
        self.portal = portal
        self.token = token

    def __call__(self, method: str, **params: Any) -> requests.Response:
        return requests.post(
            self.portal.client_endpoint + method, json={**params, "auth": self.token}, timeout=10
        )


@pytest.fixture
def installed(portal: Portal, sink: Sink) -> Portal:
    """The portal with the app installed and install-finished (the sink answers 200)."""
    result = portal.install()
    assert result.finished
    return portal


@pytest.fixture
def rest(installed: Portal) -> Rest:
    return Rest(installed, installed.tokens_for(1).access_token)
