"""The app factory and the /health probe."""

from __future__ import annotations

import pytest

from b24app import create_app
from b24app.config import Settings
from b24app.storage.migrate import head_revision


def test_settings_from_prefixed_env() -> None:
    """B24APP_* variables are read and typed by the field defaults."""
    s = Settings.from_env(
        {
            "B24APP_CLIENT_ID": "app.x",
            "B24APP_REST_RATE": "5",
            "B24APP_ALLOW_INSECURE_ENDPOINTS": "true",
            "B24APP_REST_BURST": "250",
        }
    )
    assert (s.client_id, s.rest_rate, s.allow_insecure_endpoints, s.rest_burst) == (
        "app.x",
        5.0,
        True,
        250,
    )


AUTH = {"Authorization": "Bearer test-metrics-token"}


def test_health_reports_database_and_redis(client) -> None:
    """/health answers 200 when both the database and Redis answer (details with the token)."""
    response = client.get("/health", headers=AUTH)
    assert response.status_code == 200
    body = response.get_json()
    assert {k: body[k] for k in ("status", "database", "redis")} == {
        "status": "ok",
        "database": "ok",
        "redis": "ok",
    }
    assert body["schema"]["current"] is True
    assert body["schema"]["revision"] == body["schema"]["head"] == head_revision()


def test_health_reports_a_dead_redis(settings) -> None:
    """With Redis unreachable, /health answers 503 and names it."""
    app = create_app(
        {"TESTING": True}, settings=settings.replace(redis_url="redis://127.0.0.1:1/0")
    )
    response = app.test_client().get("/health", headers=AUTH)
    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("error")
    assert response.get_json()["database"] == "ok"
    anonymous = app.test_client().get("/health")
    assert anonymous.status_code == 503 and anonymous.get_json() == {"status": "degraded"}


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer wrong", "test-metrics-token", "Basic dGVzdA=="]
)
def test_health_tells_anyone_only_ok_or_degraded(client, header) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 item 3b: no revision, no component names without the metrics token."""
    response = client.get(
        "/health", headers={"Authorization": header} if header is not None else {}
    )
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_health_details_need_a_configured_token(services, settings) -> None:  # type: ignore[no-untyped-def]
    """No metrics token configured: nobody gets the details (an empty bearer matches nothing)."""
    app = create_app({"TESTING": True, "B24APP_SERVICES": services},
                     settings=settings.replace(metrics_token=""))  # fmt: skip
    for header in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
        assert app.test_client().get("/health", headers=header).get_json() == {"status": "ok"}
