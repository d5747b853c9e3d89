"""Safe message templates (b24app.templating): only whitelisted {name} placeholders."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from b24app import templating
from b24app.settings import DEFAULTS
from b24app.templating import PLACEHOLDERS
from b24app.templating import render
from b24app.templating import TemplateError
from b24app.templating import validate

VALUES = {"client_name": "Анна", "service": "Стрижка", "date": "01.02.2026", "time": "10:00"}


def test_default_templates_are_valid() -> None:
    for text in DEFAULTS["reminders"]["templates"]["default"].values():
        assert validate(text) == []
    assert {"client_name", "service", "date", "time", "business_name"} <= PLACEHOLDERS


def test_render_substitutes_and_escapes() -> None:
    assert render("{client_name}: {service} {{x}} }}", VALUES) == "Анна: Стрижка {x} }"
    assert render("{business_name}!", VALUES) == "!"


def test_values_are_not_reinterpreted() -> None:
    assert render("{client_name}", {"client_name": "{service}"}) == "{service}"


def test_problems() -> None:
    cases = {
        "{client_name:>1500000000}": "format spec",
        "{client_name!r}": "conversion",
        "{client_name.__class__}": "attribute",
        "{client_name[0]}": "index",
        "{": "unbalanced",
        "}": "unbalanced",
        "{nope}": "unknown placeholder",
        "{}": "empty",
        "{client {name}": "unbalanced",
    }
    for template, expected in cases.items():
        problems = validate(template)
        assert problems and expected in problems[0], (template, problems)
        try:
            render(template, VALUES)
        except TemplateError as exc:
            assert exc.problems == problems
        else:
            raise AssertionError(template)
    assert "too long" in validate("x" * 2001)[0]
    assert validate("x" * 2000) == []
    assert validate("{a}", allowed=["a"]) == []


def test_output_is_bounded() -> None:
    out = render("{client_name}" * 150, {"client_name": "x" * 10_000})
    assert len(out) <= templating.MAX_OUTPUT_LENGTH


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("{}ab:!.[]_ ") + ["{client_name}", "{time}"]), max_size=40))
def test_any_text_validates_or_renders(pieces: list[str]) -> None:
    template = "".join(pieces)
    if validate(template):
        try:
            render(template, VALUES)
        except TemplateError:
            return
        raise AssertionError(template)
    out = render(template, VALUES)
    assert len(out) <= len(template) + 20 * template.count("{")
