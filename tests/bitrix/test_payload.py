"""The bracket-key form parser against Bitrix24's documented wire format."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from b24app.bitrix.payload import encode_php_form
from b24app.bitrix.payload import MalformedPayload
from b24app.bitrix.payload import parse_php_form
from tests.conftest import FIXTURES


@pytest.mark.parametrize(
    "name",
    [
        "onappinstall_event",
        "oncrmleadadd_event",
        "oncrmleadupdate_event",
        "oncrmleaddelete_event",
        "onappuninstall_event",
        "robot_handler_call_captured",
    ],
)
def test_raw_body_nests_like_the_documented_payload(name: str) -> None:
    """Each raw form body parses into the nested shape the docs show."""
    raw = (FIXTURES / "raw" / f"{name}.form.txt").read_text().strip()
    nested = parse_php_form(parse_qsl(raw, keep_blank_values=True))
    documented = json.loads((FIXTURES / f"{name}.nested.json").read_text())
    assert nested == _as_strings(documented)


def _as_strings(value):  # type: ignore[no-untyped-def]
    """The docs print numbers; the wire carries strings (nulls are dropped)."""
    if isinstance(value, dict):
        return {k: _as_strings(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_strings(v) for v in value]
    return str(value)


def test_numeric_keys_become_lists() -> None:
    """``document_id[0..2]`` is a list, ``data[FIELDS][ID]`` a dict."""
    nested = parse_php_form(
        [
            ("document_id[0]", "crm"),
            ("document_id[1]", "CCrmDocumentLead"),
            ("document_id[2]", "LEAD_456"),
            ("data[FIELDS][ID]", "7"),
            ("tags[]", "a"),
            ("tags[]", "b"),
        ]
    )
    assert nested == {
        "document_id": ["crm", "CCrmDocumentLead", "LEAD_456"],
        "data": {"FIELDS": {"ID": "7"}},
        "tags": ["a", "b"],
    }


def test_the_top_level_is_always_a_mapping_of_field_names() -> None:
    """``0=a&1=b`` (hostile input) is two fields, not a list a view would call ``.get`` on."""
    assert parse_php_form([("0", "a"), ("1", "b")]) == {"0": "a", "1": "b"}
    assert parse_php_form([("0[0]", "a"), ("0[1]", "b")]) == {"0": ["a", "b"]}


@pytest.mark.parametrize(
    "key",
    ["auth[member_id", "auth]x[", "[x]", "a" + "[b]" * 9, "auth[x]]"],
)
def test_malformed_keys_are_rejected(key: str) -> None:
    """Unbalanced or too-deep bracket keys raise MalformedPayload."""
    with pytest.raises(MalformedPayload):
        parse_php_form([(key, "1")])


def test_value_and_container_conflict_is_rejected() -> None:
    """``a=1`` and ``a[b]=2`` cannot both hold."""
    with pytest.raises(MalformedPayload):
        parse_php_form([("a", "1"), ("a[b]", "2")])
    with pytest.raises(MalformedPayload):
        parse_php_form([("a[b]", "2"), ("a", "1")])


def test_encode_round_trips() -> None:
    """What the emulator encodes, the app parses back unchanged."""
    data = {
        "event": "ONCRMLEADADD",
        "data": {"FIELDS": {"ID": "5"}},
        "auth": {"member_id": "m"},
        "document_id": ["crm", "CCrmDocumentLead", "LEAD_5"],
        "text": "Привет & до свидания",
    }
    assert parse_php_form(parse_qsl(encode_php_form(data), keep_blank_values=True)) == data


NON_ASCII_DIGITS = "²³¹٠١٢۰১߀०௦๐𝟎𝟘０"
_part = st.text(alphabet="0123456789" + NON_ASCII_DIGITS + "ab_", max_size=4)
_key = st.builds(
    lambda head, parts, tail: head + "".join(f"[{p}]" for p in parts) + tail,
    st.sampled_from(["auth", "data", "document_id", "x"]),
    st.lists(_part, max_size=10),
    st.sampled_from(["", "", "[", "]", "[]"]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_key, st.text(max_size=5)), max_size=20))
def test_any_bracket_keys_parse_or_are_malformed(pairs: list[tuple[str, str]]) -> None:
    """Non-ASCII digits, leading zeros, deep and unbalanced keys: a dict or MalformedPayload,
    never another exception (``auth[²]`` was a ValueError → 500 on every route)."""
    try:
        nested = parse_php_form(pairs)
    except MalformedPayload:
        return
    assert isinstance(nested, dict)


@pytest.mark.parametrize("index", ["²", "٠", "১", "𝟘", "０", "01", "00"])
def test_only_ascii_canonical_indices_make_lists(index: str) -> None:
    """A list index is ``0|[1-9][0-9]*`` in ASCII: anything else stays a dict key."""
    assert parse_php_form([("auth[0]", "a"), (f"auth[{index}]", "b")]) == {
        "auth": {"0": "a", index: "b"}
    }
    assert parse_php_form([(f"auth[{index}]", "b")]) == {"auth": {index: "b"}}
