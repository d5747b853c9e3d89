"""Secrets never reach the logs: masking of every token shape Bitrix24 uses."""

from __future__ import annotations

import io
import json
import logging

import pytest

from b24app import logs

SECRET = "s6p6eclrvim6da22ft9ch94ekreb52lv"


@pytest.mark.parametrize(
    "text",
    [
        f"auth%5Baccess_token%5D={SECRET}&auth%5Bmember_id%5D=abc",
        f"auth[refresh_token]={SECRET}&x=1",
        f'{{"access_token": "{SECRET}", "member_id": "abc"}}',
        f"{{'application_token': '{SECRET}'}}",
        f"AUTH_ID={SECRET}&AUTH_EXPIRES=3600",
        f"REFRESH_ID={SECRET}",
        f"https://oauth.bitrix.info/oauth/token/?grant_type=refresh_token&client_secret={SECRET}",
        f'{{"EVENT_TOKEN": "{SECRET}"}}',
        f"?auth={SECRET}",
    ],
)
def test_mask_secrets_hides_every_token_shape(text: str) -> None:
    """Each way a token appears in a URL, a form body or JSON is masked."""
    masked = logs.mask_secrets(text)
    assert SECRET not in masked
    assert "***" in masked


def test_log_records_and_tracebacks_are_masked() -> None:
    """A token in a message or in an exception's text does not reach the output."""
    stream = io.StringIO()
    logger = logging.getLogger("b24app.test.masking")
    logger.addHandler(logs.make_handler(stream))
    logger.propagate = False
    with logs.bind(member_id="portal-1", lead_id=7):
        logger.warning("calling with auth[access_token]=%s", SECRET)
        try:
            raise RuntimeError(f"failed: refresh_token={SECRET}")
        except RuntimeError:
            logger.exception("boom")
    err = stream.getvalue()
    assert SECRET not in err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert records[0]["member_id"] == "portal-1" and records[0]["lead_id"] == 7
    assert "RuntimeError" in records[1]["exc"]
