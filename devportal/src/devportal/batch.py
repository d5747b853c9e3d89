"""``batch``: up to 50 commands in one HTTP request, with ``$result[...]`` chaining.

Response shape per EN:``batch.md`` and the fixtures: ``result.result``,
``result_error``, ``result_total``, ``result_next``, ``result_time``. Sections follow PHP's
``json_encode`` of arrays: empty → ``[]``; keys exactly ``0..n-1`` → a JSON list; otherwise
an object (so a list-style ``cmd`` with a failed first command yields ``{"1": …}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from b24app.bitrix.payload import MalformedPayload
from b24app.bitrix.payload import parse_php_form
from devportal.errors import RestError
from devportal.rest import ListResult

MAX_COMMANDS = 50
_REF = re.compile(r"\$result\[([^\]]+)\]((?:\[[^\]]*\])*)")
_PART = re.compile(r"\[([^\]]*)\]")

# run(method, params) -> (result-or-ListResult, time dict); raises RestError
Runner = Callable[[str, dict[str, Any]], tuple[Any, dict[str, Any]]]


def php_array(data: dict[Any, Any]) -> Any:
    if not data:
        return []
    keys = list(data)
    if all(isinstance(k, int) for k in keys) and keys == list(range(len(keys))):
        return [data[k] for k in keys]
    return {str(k): v for k, v in data.items()}


def _lookup(results: dict[str, Any], key: str, path: str) -> Any:
    node: Any = results.get(key)
    for part in _PART.findall(path):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if not isinstance(value, str) or "$result[" not in value:
        return value

    def repl(match: re.Match[str]) -> str:
        found = _lookup(results, match.group(1), match.group(2))
        if found is None or isinstance(found, dict | list):
            return match.group(0)
        return "Y" if found is True else "N" if found is False else str(found)

    return _REF.sub(repl, value)


def parse_command(command: Any) -> tuple[str, dict[str, Any]]:
    """``"crm.lead.list?filter[>ID]=5&start=-1"`` (or ``{method, params}``) → parts."""
    if isinstance(command, dict) and "method" in command:
        params = command.get("params") or {}
        return str(command["method"]), params if isinstance(params, dict) else {}
    text = str(command)
    method, _, query = text.partition("?")
    try:
        params = parse_php_form(parse_qsl(query, keep_blank_values=True)) if query else {}
    except MalformedPayload as exc:
        raise RestError(400, "INVALID_REQUEST", str(exc)) from exc
    return method, params


def run_batch(params: dict[str, Any], run: Runner) -> dict[str, Any]:
    cmd = params.get("cmd")
    halt = str(params.get("halt", "0")).lower() in ("1", "true", "y")
    if isinstance(cmd, list):
        items: list[tuple[Any, Any]] = list(enumerate(cmd))
    elif isinstance(cmd, dict):
        items = list(cmd.items())
    else:
        items = []
    if len(items) > MAX_COMMANDS:
        raise RestError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
    results: dict[Any, Any] = {}
    by_name: dict[str, Any] = {}
    errors: dict[Any, Any] = {}
    totals: dict[Any, Any] = {}
    nexts: dict[Any, Any] = {}
    times: dict[Any, Any] = {}
    for key, command in items:
        try:
            method, sub = parse_command(command)
            method = method.strip().lower().removesuffix(".json")
            sub = _substitute(sub, by_name)
            if method == "batch":
                raise RestError(
                    405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
                )
            value, timing = run(method, sub)
        except RestError as exc:
            errors[key] = exc.body()
            if halt:
                break
            continue
        times[key] = timing
        if isinstance(value, ListResult):
            if value.total is not None:
                totals[key] = value.total
            if value.next is not None:
                nexts[key] = value.next
            value = value.result
        results[key] = value
        by_name[str(key)] = value
    return {
        "result": php_array(results),
        "result_error": php_array(errors),
        "result_total": php_array(totals),
        "result_next": php_array(nexts),
        "result_time": php_array(times),
    }
