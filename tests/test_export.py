"""``b24app export --webhook``: fast-bitrix24 over real HTTP against the emulator's incoming
webhook (``/rest/<user_id>/<code>/<method>``)."""

from __future__ import annotations

import csv
from typing import Any

import requests
from click.testing import CliRunner

from b24app.cli import main


def _read(path: Any) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def test_export_through_an_incoming_webhook(emulator: Any, tmp_path: Any) -> None:
    """Every lead, the stage history, the statuses and users; pages fetched in batches."""
    portal = emulator.create_portal("exported")
    ids = []
    for i in range(130):
        lead_id = portal.add_lead(
            {"TITLE": f"=Заявка {i}" if i == 0 else f"Заявка {i}", "SOURCE_ID": "CALL"},
            events=False,
        )
        ids.append(int(lead_id))
    webhook = emulator.add_webhook(portal, user_id=1)
    before = emulator.http_requests(portal)
    result = CliRunner().invoke(main, ["export", "--webhook", webhook, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "leads: 130 rows" in result.output
    assert webhook not in result.output
    leads = _read(tmp_path / "leads.csv")
    assert sorted(int(r["ID"]) for r in leads) == sorted(ids)
    assert {r["TITLE"] for r in leads if r["TITLE"].startswith("'")} == {"'=Заявка 0"}
    assert len(_read(tmp_path / "stage_history.csv")) >= 130
    sources = [r for r in _read(tmp_path / "statuses.csv") if r["ENTITY_ID"] == "SOURCE"]
    assert {"STATUS_ID": "CALL", "NAME": "Звонок"}.items() <= next(
        r for r in sources if r["STATUS_ID"] == "CALL"
    ).items()
    assert any(r["ID"] == "1" and r["NAME"] for r in _read(tmp_path / "users.csv"))
    # 3 pages of leads and of history: one request for the first page, one batch for the
    # rest; statuses and users one each.
    assert emulator.http_requests(portal) - before <= 6


def test_wrong_webhook_code_is_refused(emulator: Any, tmp_path: Any) -> None:
    """A made-up code: the emulator answers 401 like Bitrix24; the command says so cleanly."""
    portal = emulator.create_portal("other")
    good = emulator.add_webhook(portal, user_id=1)
    bad = good.replace(good.rstrip("/").rsplit("/", 1)[1], "0" * 16)
    assert requests.post(bad + "crm.lead.list", json={}, timeout=10).status_code == 401
    result = CliRunner().invoke(main, ["export", "--webhook", bad, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "crm.lead.list failed" in result.output
    assert bad not in result.output
    result = CliRunner().invoke(main, ["export", "--webhook", "not a url", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "not a webhook URL" in result.output


def test_the_webhook_comes_from_the_environment_and_the_argument_warns(tmp_path: Any) -> None:
    """Issue 19 item 3e: ``--webhook URL`` puts the credential in argv (``ps``, shell history).
    B24APP_EXPORT_WEBHOOK is the documented way; the option still works, with a warning."""
    out = ["--out", str(tmp_path)]
    help_text = CliRunner().invoke(main, ["export", "--help"]).output
    assert "B24APP_EXPORT_WEBHOOK" in " ".join(help_text.split())
    from_env = CliRunner().invoke(
        main, ["export", *out], env={"B24APP_EXPORT_WEBHOOK": "not a url"}
    )
    assert from_env.exit_code == 1 and "not a webhook URL" in from_env.output
    assert "warning" not in from_env.output
    from_argv = CliRunner().invoke(main, ["export", "--webhook", "not a url", *out])
    assert from_argv.exit_code == 1 and "not a webhook URL" in from_argv.output
    assert "warning: --webhook" in from_argv.stderr and "B24APP_EXPORT_WEBHOOK" in from_argv.stderr
