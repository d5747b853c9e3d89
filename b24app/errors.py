"""One error shape for every request the app answers with an error.

``{"code": 403, "status": "Forbidden", "message": "...", "errors": {...}}`` (after
flask-smorest), registered once in the factory for HTTP errors, marshmallow validation
errors and unexpected exceptions (a 500 never leaks a traceback or a token).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask import jsonify
from flask import Response
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the caller with ``status`` and a readable ``message``."""

    def __init__(self, status: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def error_response(status: int, message: str | None = None, errors: Any = None) -> Response:
    payload: dict[str, Any] = {"code": status, "status": HTTP_STATUS_CODES.get(status, "Error")}
    if message:
        payload["message"] = message
    if errors:
        payload["errors"] = errors
    response = jsonify(payload)
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    """Register the handlers that turn every failure into the one JSON shape."""

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return error_response(err.status, err.message, err.errors)

    @app.errorhandler(ValidationError)
    def _validation_error(err: ValidationError) -> Response:
        return error_response(400, "Invalid payload.", err.messages)

    @app.errorhandler(OperationalError)
    def _database_unavailable(err: OperationalError) -> Response:
        # The database is down or unreachable: a clean, retryable 503 (Bitrix24 and the
        # frames see the one error shape), not a 500. The statement and its parameters are
        # not logged: they may carry tokens.
        log.warning("database unavailable: %s", type(err.orig).__name__)
        return error_response(503, "Service temporarily unavailable.")

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        return error_response(err.code or 500, err.description)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "Internal error.")
