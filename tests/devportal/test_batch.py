"""batch: shapes (empty sections are ``[]``), chaining, halt, limits."""

from __future__ import annotations

from tests.devportal.conftest import Rest


def test_success_shape_and_chaining(rest: Rest) -> None:
    body = rest(
        "batch",
        halt=0,
        cmd={"get_user": "user.current",
             "get_department": "department.get?ID=$result[get_user][UF_DEPARTMENT][0]"},
    ).json()  # fmt: skip
    result = body["result"]
    assert set(result) == {"result", "result_error", "result_total", "result_next", "result_time"}
    assert result["result"]["get_department"][0]["ID"] == "1"
    assert result["result_error"] == [] and result["result_next"] == []
    assert result["result_total"] == {"get_department": 1}
    assert set(result["result_time"]) == {"get_user", "get_department"}


def test_errors_halt_and_list_cmd(rest: Rest) -> None:
    body = rest("batch", halt=0, cmd={"a": "crm.lead.get?id=999", "b": "server.time"}).json()
    assert body["result"]["result_error"]["a"] == {"error": "", "error_description": "Not found"}
    assert "b" in body["result"]["result"]
    halted = rest("batch", halt=1, cmd={"a": "nope.method", "b": "server.time"}).json()["result"]
    assert halted["result"] == [] and list(halted["result_error"]) == ["a"]
    listed = rest("batch", cmd=["server.time", "crm.lead.get?id=1"]).json()["result"]
    assert isinstance(listed["result"], list) and len(listed["result"]) == 1
    assert listed["result_error"] == {"1": {"error": "", "error_description": "Not found"}}


def test_nested_batch_and_length_limit(rest: Rest) -> None:
    nested = rest("batch", cmd={"x": "batch?cmd[y]=server.time"}).json()["result"]
    assert nested["result_error"]["x"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    too_long = rest("batch", cmd={f"c{i}": "server.time" for i in range(51)})
    assert too_long.status_code == 400
    assert too_long.json()["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"
    ok = rest("batch", cmd={f"c{i}": "server.time" for i in range(50)})
    assert len(ok.json()["result"]["result"]) == 50


def test_batch_is_one_http_request_and_commands_are_recorded(rest: Rest) -> None:
    emu = rest.portal.emu
    before = emu.http_requests(rest.portal)
    rest("batch", cmd={"a": "crm.lead.add?fields[TITLE]=x", "b": "crm.lead.list?start=-1"})
    assert emu.http_requests(rest.portal) == before + 1
    assert len(emu.calls(method="crm.lead.add", in_batch=True)) == 1
