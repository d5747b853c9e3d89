"""``/health``: the database and Redis answer, or the probe says which one does not."""

from __future__ import annotations

from flask import Blueprint
from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from b24app.storage.migrate import schema_state
from b24app.web import services

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    """200 with ``{"database": "ok", "redis": "ok"}``, or 503 naming what failed."""
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
    body = {"status": "ok" if healthy else "degraded", **checks, "schema": schema}
    return jsonify(body), 200 if healthy else 503
