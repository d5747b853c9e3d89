"""Interface language and number formats: Russian first, English too."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from b24app import i18n
from b24app import i18n_catalog


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("ru", "ru"),
        ("RU", "ru"),
        ("ua", "ru"),
        ("", "ru"),
        (None, "ru"),
        ("en", "en"),
        ("de", "en"),
        ("la", "en"),
    ],
)
def test_language_from_bitrix_lang(lang, expected) -> None:
    """Russian-speaking interfaces (and unknown) get Russian, everything else English."""
    assert i18n.lang_from(lang) == expected


def test_every_string_exists_in_both_languages() -> None:
    """No key is Russian-only or English-only, none is empty, the placeholders agree, and the
    compiled catalogs the app loads are the ``.po`` files translators edit."""
    assert set(i18n.STRINGS["ru"]) == set(i18n.STRINGS["en"])
    assert len(i18n.STRINGS["ru"]) > 150
    assert i18n_catalog.problems(i18n_catalog.load()) == []
    assert i18n_catalog.load() == i18n.STRINGS


def test_catalog_check_finds_gaps() -> None:
    """The check can fail: a missing English text and a placeholder mismatch are reported."""
    strings = {"ru": {"a": "Лид {id}", "b": "Да"}, "en": {"a": "Lead {name}"}}
    assert i18n_catalog.problems(strings) == [
        "a: placeholders differ between languages",
        "b: no en text",
    ]


def test_from_dict_merges_a_branchs_strings(tmp_path, monkeypatch) -> None:
    """The conversion of another branch's STRINGS dict is reproducible: its keys land in
    both catalogs (compiled too), the existing ones stay."""
    real = {lang: i18n_catalog.path(lang) for lang in i18n_catalog.LANGS}
    monkeypatch.setattr(i18n_catalog, "CATALOGS", tmp_path / "translations")
    for lang in i18n_catalog.LANGS:
        i18n_catalog.path(lang).parent.mkdir(parents=True)
        shutil.copy(real[lang], i18n_catalog.path(lang))
    source = tmp_path / "i18n_branch.py"
    source.write_text(
        'STRINGS = {"ru": {"new.key": "Новая {x}"}, "en": {"new.key": "New {x}"}}\n',
        encoding="utf-8",
    )
    n = i18n_catalog.from_dict([str(source)])
    merged = i18n_catalog.load_compiled()
    assert n == len(i18n.STRINGS["ru"]) + 1
    assert merged["ru"]["new.key"] == "Новая {x}" and merged["en"]["new.key"] == "New {x}"
    assert merged["ru"]["lead.title"] == i18n.STRINGS["ru"]["lead.title"]


def test_translate_with_parameters_and_fallback() -> None:
    """Parameters are filled in; an unknown key comes back as itself."""
    assert i18n.translate("ru", "lead.title", id=7) == "Лид №7"
    assert i18n.translate("en", "lead.title", id=7) == "Lead #7"
    assert i18n.translate("en", "no.such.key") == "no.such.key"


def test_numbers_money_percent_and_durations() -> None:
    """ru: narrow-space thousands and decimal comma; en: comma thousands; None → —."""
    assert i18n.fmt_number(1234567, "ru") == "1\u202f234\u202f567"
    assert i18n.fmt_number(1234567.25, "en", 1) == "1,234,567.2"
    assert i18n.fmt_pct(7.14, "ru") == "7,1\u00a0%"
    assert i18n.fmt_money(Decimal("37500"), "ru") == "37\u202f500\u00a0₽"
    assert i18n.fmt_money(None, "en") == i18n.DASH
    assert i18n.fmt_duration(125, "ru") == "2\u00a0мин 05\u00a0с"
    assert i18n.fmt_duration(3900, "en") == "1\u00a0h 05\u00a0min"
    assert i18n.fmt_duration(None, "ru") == i18n.DASH
    assert i18n.fmt_number(-1500, "ru") == "-1\u202f500"
