"""Issue 10, item 7: /metrics needs its bearer token and names no portal."""

from __future__ import annotations

import pytest

from b24app import create_app
from b24app import metrics


def test_metrics_are_off_without_a_configured_token(services, settings) -> None:  # type: ignore[no-untyped-def]
    app = create_app({"TESTING": True, "B24APP_SERVICES": services},
                     settings=settings.replace(metrics_token=""))  # fmt: skip
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong", "Basic dGVzdC1tZXRyaWNzLXRva2Vu", "test-metrics-token"],
)
def test_metrics_need_the_bearer_token(client, header) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401 and response.get_json()["code"] == 401


def test_metrics_with_the_token_carry_no_member_id(client, settings) -> None:  # type: ignore[no-untyped-def]
    metrics.REST_CALLS.labels(outcome="ok").inc()
    metrics.REST_LIMIT_HITS.inc()
    response = client.get("/metrics", headers={"Authorization": f"bearer {settings.metrics_token}"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "b24app_rest_calls_total" in text and "member_id" not in text
