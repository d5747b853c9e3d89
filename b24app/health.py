"""``/health``: the database and Redis answer, or the probe says which one does not.

Anyone gets only ``{"status": "ok" | "degraded"}`` (and 200/503): which component failed and
the migration revision help an attacker as much as an operator, so the details need the
metrics token (``Authorization: Bearer <B24APP_METRICS_TOKEN>``), as ``/metrics`` does.
"""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from flask import Response
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import generate_latest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text

from b24app.errors import ApiError
from b24app.metrics import exposed_registry
from b24app.metrics import presents_token
from b24app.metrics import TIMERS_PENDING
from b24app.storage.migrate import schema_state
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.web import services

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    """200 ``{"status": "ok"}`` or 503 ``{"status": "degraded"}``; with the metrics token also
    ``database``, ``redis`` (``ok`` or what failed) and the ``schema`` revision."""
    checks: dict[str, str] = {}
    svc = services()
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # the probe reports, never raises
        checks["database"] = f"error: {type(exc).__name__}"
    schema: dict[str, object] = {}
    if checks["database"] == "ok":
        try:
            state = schema_state(svc.engine)
            schema = {"revision": state.revision, "head": state.head, "current": state.current}
            if not state.current:
                checks["database"] = "schema behind: run `b24app db upgrade`"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
    try:
        svc.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    status = {"status": "ok" if healthy else "degraded"}
    token = current_app.config["B24APP_SETTINGS"].metrics_token
    if not presents_token(request.headers.get("Authorization"), token):
        return jsonify(status), 200 if healthy else 503
    return jsonify({**status, **checks, "schema": schema}), 200 if healthy else 503


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus metrics, behind a bearer token.

    ``B24APP_METRICS_TOKEN`` unset: ``/metrics`` is 404 (off). Set: the scraper sends
    ``Authorization: Bearer <token>``; anything else is 401.
    """
    expected = current_app.config["B24APP_SETTINGS"].metrics_token
    if not expected:
        raise ApiError(404, "Not found.")
    if not presents_token(request.headers.get("Authorization"), expected):
        raise ApiError(401, "A valid metrics token is required.")
    with services().db() as session:
        TIMERS_PENDING.set(
            session.scalar(
                select(func.count()).select_from(Timer).where(Timer.state == TimerState.PENDING)
            )
            or 0
        )
    return Response(generate_latest(exposed_registry()), mimetype=CONTENT_TYPE_LATEST)
