"""The portals' REST over HTTP: authentication (OAuth token or incoming webhook), faults,
the leaky bucket, operating time, ``batch``, the answer envelope, and the record of every
call. The methods themselves are :mod:`devportal.rest`, one module per area."""

from __future__ import annotations

import time
from typing import Any
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from b24app.bitrix.payload import MalformedPayload
from devportal.batch import run_batch
from devportal.errors import method_not_found
from devportal.errors import RestError
from devportal.recording import CallRecord
from devportal.rest import all_methods  # noqa: F401  (registers every method)
from devportal.rest import call
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import METHODS
from devportal.wire import FAULT_ERRORS
from devportal.wire import fault_response
from devportal.wire import json_response
from devportal.wire import request_params
from devportal.wire import time_block

if TYPE_CHECKING:
    from devportal.eventbus import Deliveries
    from devportal.portal import Portal
    from devportal.server import DevPortal


def envelope(value: Any, start: float, operating: dict[str, float] | None = None) -> Response:
    body: dict[str, Any] = {}
    if isinstance(value, ListResult):
        body["result"] = value.result
        if value.next is not None:
            body["next"] = value.next
        if value.total is not None:
            body["total"] = value.total
    else:
        body["result"] = value
    body["time"] = time_block(start, time.time(), operating)
    return json_response(body)


def operating_limit(portal: Portal, method: str) -> Response:
    """429 for a method over its time budget, with its ``time`` block (EN:limits.md)."""
    now = time.time()
    return json_response(
        {
            "error": "OPERATION_TIME_LIMIT",
            "error_description": "Method is blocked due to operation time limit.",
            "time": time_block(now, now, portal.operating.block(method)),
        },
        429,
    )


def run(
    portal: Portal, user_id: int, method: str, params: dict[str, Any]
) -> tuple[Any, Deliveries]:
    """One method under the portal lock; the events it caused, to send after release."""
    ctx = Ctx(portal, user_id, params)
    with portal.lock:
        value = call(method, ctx)
    return value, ctx.outbox


class RestServer:
    """``/<slug>/rest/…``, ``/rest/…`` (portal found from the token) and webhooks."""

    def __init__(self, emu: DevPortal) -> None:
        self.emu = emu

    def handle(
        self, request: Request, slug: str | None, method: str, hook_user: int | None = None
    ) -> Response:
        if request.method == "OPTIONS":
            return json_response({})
        start = time.time()
        method = method.strip("/").lower().removesuffix(".json")
        state: dict[str, Any] = {
            "slug": slug, "params": {}, "user_id": None, "error": None, "hook_user": hook_user
        }  # fmt: skip
        try:
            response = self._handle(request, method, start, state)
        except RestError as exc:
            state["error"] = exc.code
            response = json_response(exc.body(), exc.status)
        if state["error"] is None and response.status_code == 200:
            body = response.get_json(silent=True)
            if isinstance(body, dict) and "error" in body and "result" not in body:
                state["error"] = str(body["error"])  # an error answered with HTTP 200
        self.emu.recorder.add_call(
            CallRecord(
                state["slug"],
                method,
                state["params"],
                response.status_code,
                state["error"],
                start,
                time.time() - start,
                user_id=state["user_id"],
                http_method=request.method,
            )  # fmt: skip
        )
        return response

    def _handle(
        self, request: Request, method: str, start: float, state: dict[str, Any]
    ) -> Response:
        emu = self.emu
        try:
            params = request_params(request)
        except (MalformedPayload, ValueError) as exc:
            emu.recorder.count_http(state["slug"])
            raise RestError(400, "INVALID_REQUEST", str(exc)) from exc
        token = str(params.pop("auth", "") or "")
        state["params"] = params
        if state["slug"] is None:
            found = emu.tokens.by_access(token)
            state["slug"] = found.slug if found else None
        emu.recorder.count_http(state["slug"])
        portal = emu.portals.get(state["slug"] or "")
        if portal is None:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        fault = emu.faults.take(portal.slug, method)
        if fault is not None:
            if fault.kind != "hang":
                state["error"] = FAULT_ERRORS[fault.kind][1]
            return fault_response(fault, emu.stopping)
        if not portal.bucket.take():
            raise RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        if state["hook_user"] is not None:  # an incoming webhook: the URL is the credential
            user_id = state["user_id"] = int(state["hook_user"])
        else:
            user_id = state["user_id"] = self._authenticate(portal, token)
        if portal.operating.blocked(method):
            state["error"] = "OPERATION_TIME_LIMIT"
            return operating_limit(portal, method)
        if method == "batch":
            return self._batch(portal, user_id, params, start)
        if method not in METHODS:
            raise method_not_found(method)
        value, outbox = run(portal, user_id, method, params)
        portal.bus.send(outbox)
        portal.operating.add(method, portal.operating.cost(method, time.time() - start))
        return envelope(value, start, portal.operating.block(method))

    def _authenticate(self, portal: Portal, token: str) -> int:
        tokens = self.emu.tokens
        if not token:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        pair = tokens.by_access(token)
        if pair is None:
            raise RestError(401, "invalid_token", "Unable to get application by token")
        if pair.slug != portal.slug:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        if tokens.is_expired(pair):
            raise RestError(401, "expired_token", "The access token provided has expired.")
        if not portal.app.installed:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        return pair.user_id

    def _batch(
        self, portal: Portal, user_id: int, params: dict[str, Any], start: float
    ) -> Response:
        outbox: Deliveries = []
        meter = portal.operating
        billed = 0.0

        def command(method: str, sub: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            nonlocal billed
            t0 = time.time()
            error: str | None = None
            status = 200
            try:
                if method not in METHODS:
                    raise method_not_found(method)
                fault = (
                    self.emu.faults.take(portal.slug, method)
                    if self._inner_fault(portal, method)
                    else None
                )
                if fault is not None:
                    code = FAULT_ERRORS.get(fault.kind, (500, "INTERNAL_SERVER_ERROR", ""))
                    raise RestError(code[0], code[1], code[2])
                if meter.batch_billing != "batch" and meter.blocked(method):
                    raise RestError(429, *FAULT_ERRORS["operation_time_limit"][1:])
                value, events = run(portal, user_id, method, sub)
                outbox.extend(events)
                cost = meter.cost(method, time.time() - t0)
                billed += cost
                if meter.batch_billing != "batch":
                    meter.add(method, cost)
                return value, time_block(t0, time.time(), meter.block(method))
            except RestError as exc:
                error, status = exc.code, exc.status
                raise
            finally:
                self.emu.recorder.add_call(
                    CallRecord(
                        portal.slug,
                        method,
                        sub,
                        status,
                        error,
                        t0,
                        time.time() - t0,
                        in_batch=True,
                        user_id=user_id,
                    )  # fmt: skip
                )

        result = run_batch(params, command)
        portal.bus.send(outbox)
        if meter.batch_billing != "commands":
            meter.add("batch", billed)
        return envelope(result, start, meter.block("batch"))

    def _inner_fault(self, portal: Portal, method: str) -> bool:
        """Faults aimed at one method also hit that method inside a batch."""
        return any(
            f.method == method and f.matches(portal.slug, method, time.monotonic())
            for f in list(self.emu.faults._faults)
        )
