"""PHP bracket-key form data (``auth[member_id]``, ``data[FIELDS][ID]``) into nested data.

Bitrix24 posts events, robot calls, install callbacks and placement loads as
``application/x-www-form-urlencoded`` built by PHP's ``http_build_query``. This is the one
place that turns those flat pairs back into dicts and lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

MAX_DEPTH = 8
MAX_KEYS = 2000

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
# A list index as PHP writes one: ASCII digits, no leading zero (``"²"``, ``"٠"`` and ``"01"``
# are plain dict keys — str.isdigit() accepts the first two and int() the last two).
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def _is_index(key: str) -> bool:
    return _INDEX.fullmatch(key) is not None


class MalformedPayload(ValueError):
    """The form keys cannot be read as PHP bracket syntax (or are too deep or too many)."""


def parse_php_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest ``key[a][b]=v`` pairs. Dicts whose keys are 0..n-1 become lists; ``key[]`` appends.

    Raises :class:`MalformedPayload` for unbalanced brackets, nesting deeper than
    ``MAX_DEPTH``, more than ``MAX_KEYS`` pairs, or a key used both as a value and a container.
    """
    root: dict[str, Any] = {}
    for count, (key, value) in enumerate(pairs, start=1):
        if count > MAX_KEYS:
            raise MalformedPayload(f"more than {MAX_KEYS} form fields")
        match = _KEY.match(key)
        if match is None:
            raise MalformedPayload(f"malformed form key {key[:60]!r}")
        path = [match.group(1), *_PART.findall(match.group(2))]
        if len(path) > MAX_DEPTH:
            raise MalformedPayload(f"form key nested deeper than {MAX_DEPTH}: {key[:60]!r}")
        node: dict[str, Any] = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part == "":
                part = str(sum(1 for k in node if _is_index(k)))
            if last:
                if isinstance(node.get(part), dict):
                    raise MalformedPayload(f"form key {key[:60]!r} is both a value and a container")
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise MalformedPayload(f"form key {key[:60]!r} is both a value and a container")
                node = child
    # The top level holds field names, always a mapping (as PHP's $_POST): ``0=a&1=b`` is
    # two fields named "0" and "1", never a list a view would call ``.get`` on.
    return {k: _listify(v) for k, v in root.items()}


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(_is_index(k) for k in converted):
        keys = sorted(int(k) for k in converted)
        if keys == list(range(len(keys))):
            return [converted[str(k)] for k in keys]
    return converted


def flatten_php_form(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The inverse: nested data to ``http_build_query`` pairs (used by the portal emulator)."""
    pairs: list[tuple[str, str]] = []
    if isinstance(data, dict):
        items: Iterable[tuple[Any, Any]] = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    else:
        return [(prefix, _scalar(data))]
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue  # PHP drops nulls
        pairs.extend(flatten_php_form(value, name))
    return pairs


def encode_php_form(data: Any) -> str:
    """Nested data to an ``application/x-www-form-urlencoded`` body."""
    return "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}".replace("%20", "+")
        for k, v in flatten_php_form(data)
    )


def _scalar(value: Any) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)
