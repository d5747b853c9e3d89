"""How the emulator reads requests and answers over HTTP: parameters (PHP form or JSON),
JSON answers with CORS, the ``time`` block of REST answers, and injected faults' answers."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from datetime import UTC
from typing import Any

from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from b24app.bitrix.payload import parse_php_form
from devportal.errors import RestError
from devportal.limits import Fault

FAULT_ERRORS: dict[str, tuple[int, str, str]] = {
    "query_limit": (503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
    "operation_time_limit": (429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."),
    "internal_error": (500, "INTERNAL_SERVER_ERROR", "Internal server error"),
    "expired_token": (401, "expired_token", "The access token provided has expired."),
    "invalid_token": (401, "invalid_token", "Unable to get application by token"),
    "overload": (503, "OVERLOAD_LIMIT", "REST API is blocked due to overload."),
}  # fmt: skip
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json; charset=utf-8",
        headers={**CORS, **(headers or {})},
    )


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).replace(microsecond=0).isoformat()


def time_block(
    start: float, finish: float, operating: dict[str, float] | None = None
) -> dict[str, Any]:
    block = {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": iso(start),
        "date_finish": iso(finish),
        "operating_reset_at": int(finish) + 600,
        "operating": 0,
    }
    block.update(operating or {})
    return block


def request_params(request: Request) -> dict[str, Any]:
    """Query string plus the body (PHP form, or a JSON object)."""
    params = parse_php_form(request.args.items(multi=True))
    if request.method == "POST":
        if request.mimetype == "application/json":
            body = json.loads(request.get_data(as_text=True) or "{}")
            if not isinstance(body, dict):
                raise RestError(400, "INVALID_REQUEST", "JSON body must be an object")
            params.update(body)
        else:
            params.update(parse_php_form(request.form.items(multi=True)))
    return params


def fault_response(fault: Fault, stopping: threading.Event) -> Response:
    """The answer of an injected fault; ``hang`` waits (until ``stopping``) and answers 504."""
    if fault.kind == "hang":
        stopping.wait(fault.hang_seconds)
        return json_response(
            {"error": "INTERNAL_SERVER_ERROR", "error_description": "Timeout"}, 504
        )
    status, code, text = FAULT_ERRORS[fault.kind]
    body: dict[str, Any] = {"error": code, "error_description": text}
    if fault.kind == "operation_time_limit":
        body["time"] = {"operating_reset_at": int(time.time()) + 600, "operating": 480.0}
    return json_response(body, status)
