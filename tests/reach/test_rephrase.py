"""The optional rephrasing of reminder templates: checked answers only, cached, never blocking."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from b24app.reach.rephrase import acceptable
from b24app.reach.rephrase import Rephraser

TEMPLATE = "{client_name}, напоминаем: {service} {date} в {time}. {business_name}"
API = "https://llm.example/v1"


def _answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"content": json.dumps({"text": text}, ensure_ascii=False)}}]}


@pytest.mark.parametrize(
    ("candidate", "ok"),
    [
        ("{client_name}, ждём вас {date} в {time} на {service} 🙂 {business_name}", True),
        ("{client_name}, ждём вас {date} на {service}. {business_name}", False),  # lost {time}
        ("{client_name}, ждём вас {date} в {time} и {time}. {business_name} {service}", False),
        ("{client_name}, ждём {service} {date} в {time}, скидка 10%! {business_name}", False),
        ("{client_name}, {service} {date} в {time}: https://x.example {business_name}", False),
        (
            "{client_name}, перед {service} {date} в {time} рекомендуем не есть. {business_name}",
            False,
        ),
        ("{client_name}, {service} {date} в {time}. {business_name} {unknown}", False),
        ("", False),
        ("{client_name} {service} {date} {time} {business_name}" + " очень" * 40, False),
    ],
)
def test_a_rephrasing_keeps_what_the_template_says(candidate: str, ok: bool) -> None:
    assert acceptable(TEMPLATE, candidate) is ok


@responses.activate
def test_an_accepted_rephrasing_is_asked_once_and_holds_no_personal_data(services: Any) -> None:
    better = "{client_name}, ждём вас {date} в {time} — {service}. До встречи! {business_name}"
    call = responses.post(f"{API}/chat/completions", json=_answer(better))
    rephraser = Rephraser(services.redis, API, "key", "m1")
    assert rephraser.template_for(TEMPLATE, "ru") == (better, "model")
    assert rephraser.template_for(TEMPLATE, "ru") == (better, "model")  # from Redis
    assert call.call_count == 1
    sent = json.loads(call.calls[0].request.body)
    assert "{client_name}" in sent["messages"][1]["content"]
    assert sent["messages"][1]["content"].endswith(TEMPLATE)
    # Another model or language is another answer.
    assert Rephraser(services.redis, API, "key", "m2").template_for(TEMPLATE, "ru")[1] == "model"
    assert call.call_count == 2


@responses.activate
def test_a_refused_answer_gives_the_template_and_is_not_asked_again(services: Any) -> None:
    call = responses.post(
        f"{API}/chat/completions", json=_answer("Приходите {date} со скидкой 50%")
    )
    rephraser = Rephraser(services.redis, API, "key", "m1")
    assert rephraser.template_for(TEMPLATE, "ru") == (TEMPLATE, "template")
    assert rephraser.template_for(TEMPLATE, "ru") == (TEMPLATE, "template")
    assert call.call_count == 1


@responses.activate
def test_a_failing_model_gives_the_template(services: Any) -> None:
    responses.post(f"{API}/chat/completions", body=requests.ConnectTimeout("slow"))
    rephraser = Rephraser(services.redis, API, "key", "m1", timeout=0.1)
    assert rephraser.template_for(TEMPLATE, "en") == (TEMPLATE, "template_fallback")
    responses.replace(responses.POST, f"{API}/chat/completions", status=500)
    assert rephraser.template_for(TEMPLATE, "en") == (TEMPLATE, "template_fallback")
    responses.replace(responses.POST, f"{API}/chat/completions", body="not json")
    assert rephraser.template_for(TEMPLATE, "en") == (TEMPLATE, "template_fallback")
