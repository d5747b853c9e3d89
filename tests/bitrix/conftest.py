"""Fixtures for the REST client tests: a portal row in the test DB, a client on the private
Redis with a fast bucket, recorded sleeps and log rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from b24app import context
from b24app.bitrix.client import BitrixClient
from b24app.config import Settings
from b24app.storage.portals import DbTokenStore
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from tests.conftest import FIXTURES

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
ENDPOINT = "https://portal.bitrix24.com/rest/"
SERVER = "https://oauth.bitrix.info/rest/"
TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"
OLD_ACCESS = "old-access-token-0123456789"
OLD_REFRESH = "old-refresh-token-0123456789"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def install_portal(
    services: context.Services,
    member_id: str = MEMBER,
    *,
    client_endpoint: str = ENDPOINT,
    server_endpoint: str = SERVER,
    access_token: str = OLD_ACCESS,
    refresh_token: str = OLD_REFRESH,
) -> None:
    with services.db() as session:
        upsert_install(
            session,
            InstallAuth(
                member_id=member_id,
                domain="portal.bitrix24.com",
                client_endpoint=client_endpoint,
                server_endpoint=server_endpoint,
                access_token=access_token,
                refresh_token=refresh_token,
            ),
        )


class Sleeps(list[float]):
    """A fake ``time.sleep`` that records the pauses instead of taking them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    # A bucket big enough that unit tests never wait on it; https-only like production.
    return settings.replace(rest_rate=1000.0, rest_burst=1000, allow_insecure_endpoints=False)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def log_rows() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def store(services: context.Services) -> DbTokenStore:
    install_portal(services)
    return DbTokenStore(services.sessions)


@pytest.fixture
def b24(
    services: context.Services,
    fast_settings: Settings,
    store: DbTokenStore,
    sleeps: Sleeps,
    log_rows: list[dict[str, Any]],
) -> BitrixClient:
    return BitrixClient(
        member_id=MEMBER,
        tokens=store,
        redis=services.redis,
        settings=fast_settings,
        log_sink=log_rows.append,
        sleep=sleeps,
    )


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
