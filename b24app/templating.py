"""Safe message templates: ``{name}`` placeholders from a whitelist, nothing else.

A template is portal-admin input that is rendered by the shared workers, so it must not be able
to cost more than its own size: no ``str.format`` (format specs such as ``{x:>1500000000}`` build
gigabyte strings, attribute/index access reads object internals), no regular expressions.

Syntax: ``{name}`` is replaced by the value of ``name`` (one of the allowed placeholders);
``{{`` and ``}}`` are a literal ``{`` / ``}``. Everything else is literal text. Anything else
inside braces — a format spec (``{x:>9}``), a conversion (``{x!r}``), attribute or index access
(``{x.y}``, ``{x[0]}``), an unknown name, an unclosed ``{`` or a lone ``}`` — is a problem that
:func:`validate` reports and :func:`render` refuses (:class:`TemplateError`).

Both functions scan the template once (linear time); :func:`render` truncates each value to
:data:`MAX_VALUE_LENGTH` characters and the result to :data:`MAX_OUTPUT_LENGTH`.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping

# The documented placeholders of reminder texts (b24app/appointments/reminder_text.py, settings DEFAULTS).
PLACEHOLDERS: frozenset[str] = frozenset(
    {"client_name", "service", "date", "time", "business_name"}
)
MAX_LENGTH = 2000
MAX_VALUE_LENGTH = 500
MAX_OUTPUT_LENGTH = 8000
_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME_REST = _NAME_START + "0123456789"


class TemplateError(ValueError):
    """The template is not valid (see :func:`validate`); ``problems`` lists why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _tokens(template: str) -> Iterator[tuple[str, str]]:
    """``("text", s)``, ``("name", n)`` or ``("problem", message)`` pieces, in one pass.

    The next ``{`` / ``}`` positions are searched for only when the scan has passed the
    previous ones, so the whole template is read a bounded number of times (linear).
    """
    n = len(template)
    i = text_start = 0
    next_open = next_close = -1
    while i < n:
        ch = template[i]
        if ch in "{}" and i + 1 < n and template[i + 1] == ch:  # {{ or }}: a literal brace
            yield "text", template[text_start:i] + ch
            i += 2
            text_start = i
        elif ch == "{":
            if next_close != n and next_close <= i:
                found = template.find("}", i + 1)
                next_close = n if found < 0 else found
            if next_open != n and next_open <= i:
                found = template.find("{", i + 1)
                next_open = n if found < 0 else found
            yield "text", template[text_start:i]
            if next_close == n or next_open < next_close:
                yield "problem", f"unbalanced braces: '{{' at position {i + 1} is not closed"
                i += 1
            else:
                yield _field(template[i + 1 : next_close])
                i = next_close + 1
            text_start = i
        elif ch == "}":
            yield "text", template[text_start:i]
            yield "problem", f"unbalanced braces: '}}' at position {i + 1} has no '{{'"
            i += 1
            text_start = i
        else:
            i += 1
    yield "text", template[text_start:n]


def _field(inner: str) -> tuple[str, str]:
    shown = inner if len(inner) <= 40 else inner[:40] + "…"
    if inner == "":
        return "problem", "empty placeholder '{}'"
    for char, what in ((":", "format spec"), ("!", "conversion"), (".", "attribute access")):
        if char in inner:
            return "problem", f"'{{{shown}}}': {what} is not allowed, only {{name}}"
    if "[" in inner or "]" in inner:
        return "problem", f"'{{{shown}}}': index access is not allowed, only {{name}}"
    if inner[0] not in _NAME_START or any(c not in _NAME_REST for c in inner):
        return "problem", f"'{{{shown}}}' is not a placeholder name"
    return "name", inner


def validate(
    template: str, allowed: Iterable[str] = PLACEHOLDERS, max_length: int = MAX_LENGTH
) -> list[str]:
    """Human-readable problems of ``template`` (English); empty when it is fine."""
    problems: list[str] = []
    if len(template) > max_length:
        return [f"too long: {len(template)} characters, at most {max_length}"]
    names = frozenset(allowed)
    for kind, value in _tokens(template):
        if kind == "problem":
            problems.append(value)
        elif kind == "name" and value not in names:
            known = ", ".join("{" + p + "}" for p in sorted(names))
            problems.append(f"unknown placeholder '{{{value}}}' (known: {known})")
        if len(problems) >= 10:
            break
    return problems


def render(
    template: str, values: Mapping[str, object], allowed: Iterable[str] = PLACEHOLDERS
) -> str:
    """``template`` with each ``{name}`` replaced by ``str(values[name])`` (an allowed name
    missing from ``values`` renders empty).

    :raise TemplateError: the template has a problem (:func:`validate`); nothing is rendered.
    """
    problems = validate(template, allowed, max_length=max(MAX_LENGTH, len(template)))
    if problems:
        raise TemplateError(problems)
    out: list[str] = []
    size = 0
    for kind, value in _tokens(template):
        if kind == "name":
            piece = values.get(value)
            value = "" if piece is None else str(piece)[:MAX_VALUE_LENGTH]
        out.append(value)
        size += len(value)
        if size >= MAX_OUTPUT_LENGTH:
            break
    return "".join(out)[:MAX_OUTPUT_LENGTH]


def placeholders(template: str) -> list[str]:
    """The placeholder names of ``template`` in order, repeats included (problems skipped)."""
    return [value for kind, value in _tokens(template) if kind == "name"]
