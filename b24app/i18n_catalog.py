"""The interface strings as gettext catalogs: ``b24app/translations/<lang>/LC_MESSAGES/
messages.po`` (Russian first, English — the files translators edit), compiled to
``messages.mo`` next to them. Babel reads and writes them (a development tool: the [test]
extra); at run time :mod:`b24app.i18n` loads the ``.mo`` files with the standard library's
``gettext`` (2 ms; parsing the ``.po`` files with Babel costs ~125 ms per process start).

Message ids are the stable keys the code uses (``"kpi.leads"``); each English entry carries
the Russian text as a translator comment, so ``i18n.translate``/``i18n.STRINGS`` keep their
shape.

Commands (``python -m b24app.i18n_catalog …``):

* ``check`` — every key in every language, no empty text, the same ``{placeholders}``, and
  the ``.mo`` files compiled from the current ``.po`` files;
* ``compile`` — ``.po`` → ``.mo`` (after editing a ``.po`` file by hand);
* ``from-dict FILE…`` — merge the ``STRINGS`` dict of Python files (an ``i18n.py`` of a
  branch written before the catalogs: ``git show issue12:b24app/i18n.py > /tmp/i18n_12.py``)
  into the catalogs; the files' texts win for keys they define.
"""

from __future__ import annotations

import datetime
import io
import re
import string
import sys
from pathlib import Path

LANGS = ("ru", "en")
EPOCH = datetime.datetime(2026, 11, 28, tzinfo=datetime.UTC)  # reproducible headers
CATALOGS = Path(__file__).parent / "translations"
_FIELD = re.compile(r"[^.\[]+")


def path(lang: str, ext: str = "po") -> Path:
    return CATALOGS / lang / "LC_MESSAGES" / f"messages.{ext}"


def load_compiled() -> dict[str, dict[str, str]]:
    """``{lang: {key: text}}`` from the compiled ``.mo`` files (standard library only)."""
    import gettext

    strings: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        with path(lang, "mo").open("rb") as fh:
            catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
        strings[lang] = {str(k): str(v) for k, v in catalog.items() if k}
    return strings


def compile_catalogs() -> None:
    """Write ``messages.mo`` from each ``messages.po``."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for lang in LANGS:
        with path(lang).open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        out = io.BytesIO()
        write_mo(out, catalog)
        path(lang, "mo").write_bytes(out.getvalue())


def load() -> dict[str, dict[str, str]]:
    """``{lang: {key: text}}`` from the ``.po`` catalogs (Babel)."""
    from babel.messages.pofile import read_po

    strings: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        with path(lang).open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        strings[lang] = {str(m.id): str(m.string) for m in catalog if m.id and m.string}
    return strings


def write(strings: dict[str, dict[str, str]]) -> None:
    """Write both catalogs (keys sorted; English entries commented with the Russian)."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    for lang in LANGS:
        catalog = Catalog(
            locale=lang, project="b24app", fuzzy=False, creation_date=EPOCH, revision_date=EPOCH
        )
        for key in sorted(strings[lang]):
            comments = [f"ru: {strings['ru'].get(key, '')}"] if lang != "ru" else []
            catalog.add(key, strings[lang][key], auto_comments=comments)
        out = io.BytesIO()
        write_po(out, catalog, width=0, omit_header=False, sort_output=True)
        path(lang).parent.mkdir(parents=True, exist_ok=True)
        path(lang).write_bytes(out.getvalue())
    compile_catalogs()


def placeholders(text: str) -> set[str]:
    return {
        _FIELD.match(name).group(0)  # type: ignore[union-attr]
        for _lit, name, _spec, _conv in string.Formatter().parse(text)
        if name
    }


def problems(strings: dict[str, dict[str, str]]) -> list[str]:
    """What ``check`` reports: missing, empty, or mismatched placeholders."""
    found = []
    keys = set().union(*(strings[lang] for lang in LANGS))
    for key in sorted(keys):
        texts = {lang: strings[lang].get(key, "") for lang in LANGS}
        for lang, text in texts.items():
            if not text.strip():
                found.append(f"{key}: no {lang} text")
        if all(texts.values()) and len({frozenset(placeholders(t)) for t in texts.values()}) > 1:
            found.append(f"{key}: placeholders differ between languages")
    return found


def from_dict(files: list[str]) -> int:
    """Merge ``STRINGS`` of each Python file into the catalogs; returns the keys written."""
    strings = load() if path("ru").exists() else {lang: {} for lang in LANGS}
    for name in files:
        namespace: dict[str, object] = {"__name__": "i18n_source"}
        exec(compile(Path(name).read_text(encoding="utf-8"), name, "exec"), namespace)  # noqa: S102
        source = namespace.get("STRINGS")
        if not isinstance(source, dict):
            raise SystemExit(f"{name}: no STRINGS dict")
        for lang in LANGS:
            strings[lang].update(source.get(lang, {}))
    write(strings)
    return len(strings["ru"])


def main(argv: list[str]) -> int:
    if argv[:1] == ["from-dict"] and argv[1:]:
        print(f"{from_dict(argv[1:])} keys in {', '.join(str(path(lang)) for lang in LANGS)}")
        return 0
    if argv[:1] == ["compile"]:
        compile_catalogs()
        return 0
    if argv[:1] == ["check"]:
        found = problems(load())
        if load_compiled() != load():
            found.append("the .mo files are older than the .po files: run `compile`")
        print("\n".join(found) or "ok")
        return 1 if found else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
