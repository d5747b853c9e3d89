"""The REST budget's logic (issue 14): plans from licences, priorities and the "full"
signal in the shared bucket, and the per-method time meter — on the private redis-server,
with an injected clock where time matters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from b24app import context
from b24app.bitrix.budget import command_methods
from b24app.bitrix.budget import current_priority
from b24app.bitrix.budget import ENTERPRISE
from b24app.bitrix.budget import limits_for
from b24app.bitrix.budget import load_plan
from b24app.bitrix.budget import OperatingMeter
from b24app.bitrix.budget import plan_family
from b24app.bitrix.budget import plan_is_stale
from b24app.bitrix.budget import Priority
from b24app.bitrix.budget import rest_priority
from b24app.bitrix.budget import STANDARD
from b24app.bitrix.budget import store_plan
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.ratelimit import LeakyBucket
from b24app.config import Settings
from b24app.storage.portals import DbTokenStore
from tests.bitrix.conftest import ENDPOINT
from tests.bitrix.conftest import MEMBER
from tests.conftest import FIXTURES


@pytest.mark.parametrize(
    ("license", "family"),
    [
        ("ru_ent250", ENTERPRISE),
        ("de_ent10000", ENTERPRISE),
        ("ent", ENTERPRISE),
        ("ru_pro", STANDARD),
        ("ru_basic", STANDARD),
        ("en_team", STANDARD),
        ("", STANDARD),
        (None, STANDARD),
    ],
)
def test_plan_family_from_licence(license: str | None, family: str) -> None:
    """Enterprise licences (``<country>_ent<users>``) get the big bucket, all others not."""
    assert plan_family(license) == family


def test_limits_per_plan_come_from_settings(settings: Settings) -> None:
    """Enterprise 5 / 250, the rest (and an unknown plan) 2 / 50."""
    assert limits_for(ENTERPRISE, settings) == (5.0, 250)
    assert limits_for(STANDARD, settings) == (2.0, 50)
    assert limits_for(None, settings) == (2.0, 50)


def test_plan_is_stored_and_goes_stale_after_a_day(services: context.Services) -> None:
    assert load_plan(services.redis, "p1") is None
    assert plan_is_stale(None)
    plan = store_plan(services.redis, "p1", "ru_ent250", now=1000.0)
    assert load_plan(services.redis, "p1") == plan
    assert plan.family == ENTERPRISE
    assert not plan_is_stale(plan, now=1000.0 + 3600)
    assert plan_is_stale(plan, now=1000.0 + 86400)
    assert services.redis.ttl("b24app:plan:p1") > 86400  # survives a missed refresh


def test_client_sizes_its_bucket_from_the_stored_plan(
    services: context.Services, settings: Settings, store: DbTokenStore
) -> None:
    """No global figure: each portal's client takes its own plan's bucket (less two slots of
    headroom; a background client also leaves a fifth of it to interactive callers)."""
    standard = BitrixClient(MEMBER, store, services.redis, settings)
    assert (standard.bucket.rate, standard.bucket.burst) == (2.0, 38)
    chatbot = BitrixClient(MEMBER, store, services.redis, settings, interactive=True)
    assert (chatbot.bucket.rate, chatbot.bucket.burst) == (2.0, 48)
    store_plan(services.redis, MEMBER, "ru_ent250")
    enterprise = BitrixClient(MEMBER, store, services.redis, settings)
    assert (enterprise.bucket.rate, enterprise.bucket.burst) == (5.0, 198)
    assert enterprise.bucket.reserve == int(198 * settings.rest_bulk_reserve)


def test_fill_makes_the_bucket_full(services: context.Services) -> None:
    """After QUERY_LIMIT_EXCEEDED the bucket is full: the next slot is one drain step away."""
    bucket = LeakyBucket(services.redis, "f1", rate=0.01, burst=10)
    assert bucket.acquire() == 0
    bucket.fill()
    assert bucket.level() == pytest.approx(10, abs=0.1)
    assert 90 < bucket.acquire() <= 100


def test_bulk_leaves_the_reserve_to_urgent_calls(services: context.Services) -> None:
    """Bulk stops at burst - reserve; normal and urgent calls still get the reserve."""
    bucket = LeakyBucket(services.redis, "r1", rate=0.001, burst=10, reserve=3)
    bulk = [bucket.acquire(priority=Priority.BULK) for _ in range(8)]
    assert bulk[:7] == [0.0] * 7 and bulk[7] > 0
    assert bucket.acquire(priority=Priority.NORMAL) == 0
    assert bucket.acquire(priority=Priority.URGENT) == 0
    assert bucket.acquire(priority=Priority.URGENT) == 0
    assert bucket.acquire(priority=Priority.URGENT) > 0  # now even urgent waits


def test_bulk_yields_while_an_urgent_call_waits(services: context.Services) -> None:
    """An urgent caller that has to wait raises a flag; bulk takes nothing until it drops,
    even when the drain freed room below bulk's limit."""
    bucket = LeakyBucket(services.redis, "r2", rate=0.001, burst=4, reserve=1)
    for _ in range(4):
        assert bucket.acquire(priority=Priority.URGENT) == 0
    assert bucket.acquire(priority=Priority.URGENT) > 0
    assert services.redis.exists("b24app:bucket:r2:urgent")
    services.redis.hset("b24app:bucket:r2", "level", "0")  # the drain made room
    assert bucket.acquire(priority=Priority.BULK) > 0  # still yields to the waiting urgent
    assert bucket.acquire(priority=Priority.URGENT) == 0
    services.redis.delete("b24app:bucket:r2:urgent")
    assert bucket.acquire(priority=Priority.BULK) == 0


def test_rest_priority_is_scoped() -> None:
    assert current_priority() == Priority.NORMAL
    with rest_priority(Priority.URGENT):
        assert current_priority() == Priority.URGENT
        with rest_priority(Priority.BULK):
            assert current_priority() == Priority.BULK
        assert current_priority() == Priority.URGENT
    assert current_priority() == Priority.NORMAL


def test_command_methods_of_a_batch() -> None:
    params = {
        "cmd": {
            "a": "crm.item.get?id=1",
            "b": "CRM.StageHistory.List?filter[x]=1",
            "c": "user.current",
        }
    }
    assert command_methods(params) == ["crm.item.get", "crm.stagehistory.list", "user.current"]
    assert command_methods({}) == []


class Clock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_meter_lets_calls_go_below_half_the_budget(services: context.Services) -> None:
    clock = Clock()
    meter = OperatingMeter(services.redis, "o1", 480.0, clock=clock)
    assert meter.delay("crm.item.list") == 0
    meter.record("crm.item.list", {"operating": 100.0, "operating_reset_at": clock.now + 300})
    assert meter.delay("crm.item.list") == 0
    assert meter.delay("other.method") == 0


def test_meter_spaces_calls_as_the_budget_runs_out(services: context.Services) -> None:
    """Above half the budget the calls are spaced so what is left lasts until the reset;
    the closer to the ceiling, the longer the gap; at the ceiling, wait for the reset."""
    clock = Clock()
    meter = OperatingMeter(services.redis, "o2", 480.0, clock=clock)
    reset = clock.now + 300
    meter.record("m", {"operating": 250.0, "operating_reset_at": reset})
    meter.record("m", {"operating": 280.0, "operating_reset_at": reset})  # 30 s per call
    first = meter.delay("m")
    assert first == pytest.approx(300 * 30 / (432 - 280))
    meter.record("m", {"operating": 400.0, "operating_reset_at": reset})
    assert meter.delay("m") > first
    meter.record("m", {"operating": 440.0, "operating_reset_at": reset})
    assert meter.delay("m") == pytest.approx(300)
    clock.now = reset + 1  # the window moved on: the old figure no longer holds anything back
    assert meter.delay("m") == 0


def test_meter_ignores_answers_without_figures(services: context.Services) -> None:
    """No ``operating`` in the answer is no information, not a zero."""
    meter = OperatingMeter(services.redis, "o3", 480.0, clock=Clock())
    meter.record("m", {"start": 1.0})
    meter.record("m", None)
    assert meter.get("m") is None


@pytest.mark.parametrize("adaptive", [True, False])
def test_query_limit_fills_the_shared_bucket_unless_switched_off(
    services: context.Services,
    fast_settings: Settings,
    store: DbTokenStore,
    rsps: Any,
    adaptive: bool,
) -> None:
    """A 503 QUERY_LIMIT_EXCEEDED makes the bucket full for every process (adaptive), or
    is only backed off from (``rest_adaptive=False``, the old behaviour)."""
    settings = fast_settings.replace(rest_rate=0.01, rest_burst=100, rest_adaptive=adaptive)
    b24 = BitrixClient(MEMBER, store, services.redis, settings, sleep=lambda s: None)
    b24.bucket.reset()
    limit = json.loads((FIXTURES / "error_query_limit_exceeded.json").read_text())
    rsps.post(ENDPOINT + "user.current", json=limit, status=503)
    rsps.post(ENDPOINT + "user.current", json={"result": {"ID": "1"}}, status=200)
    if adaptive:  # the retry waits for the drain: let the fake sleep see an empty bucket
        b24.bucket.wait = lambda *a, **k: 0.0  # type: ignore[method-assign]
    assert b24.call("user.current") == {"ID": "1"}
    level = b24.bucket.level()
    assert (level >= b24.bucket.burst - 3) if adaptive else (level <= 3)
