"""The app factory and the /health probe."""

from __future__ import annotations

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


def test_health_reports_database_and_redis(client) -> None:
    """/health answers 200 when both the database and Redis answer."""
    response = client.get("/health")
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
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("error")
    assert response.get_json()["database"] == "ok"
