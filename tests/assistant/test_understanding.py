"""The assistant's rules read Russian and English dates, times, phones, names, services and
intents relative to the portal's local "now" (Friday 27 Nov 2026, 14:00 Moscow)."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from b24app.assistant.understanding import find_phone
from b24app.assistant.understanding import Service
from b24app.assistant.understanding import understand
from b24app.assistant.understanding import When

NOW = dt.datetime(2026, 11, 27, 14, 0, tzinfo=ZoneInfo("Europe/Moscow"))  # a Friday
SERVICES = [
    Service("manicure", ("Маникюр", "Manicure"), ("ногти", "маник", "nails")),
    Service("haircut", ("Стрижка", "Haircut"), ("подстричься", "постричь")),
]
D = dt.date
T = dt.time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("завтра после 18", When(D(2026, 11, 28), earliest=T(18))),
        ("в субботу утром", When(D(2026, 11, 28), earliest=T(9), latest=T(12))),
        ("15.12 в 11:30", When(D(2026, 12, 15), at=T(11, 30))),
        ("послезавтра в 10", When(D(2026, 11, 29), at=T(10))),
        ("tomorrow at 5pm", When(D(2026, 11, 28), at=T(17))),
        ("15 декабря в 7 вечера", When(D(2026, 12, 15), at=T(19))),
        ("next monday 10am", When(D(2026, 11, 30), at=T(10))),
        ("сегодня вечером", When(D(2026, 11, 27), earliest=T(17), latest=T(21))),
        ("December 15 at 11:30", When(D(2026, 12, 15), at=T(11, 30))),
        ("во вторник до 12", When(D(2026, 12, 1), latest=T(12))),
        ("в 5", When(at=T(17))),
        ("10 утра", When(at=T(10))),
        ("3.01", When(D(2027, 1, 3))),  # a past day-month means next year
        ("05.12.2026 в 9:15", When(D(2026, 12, 5), at=T(9, 15))),
        ("after 6pm on friday", When(D(2026, 12, 4), earliest=T(18))),
    ],
)
def test_dates_and_times(text: str, expected: When) -> None:
    result = understand(text, now=NOW, services=SERVICES)
    assert result.when == expected
    assert result.scores["when"] >= 0.7


def test_no_date_in_plain_text() -> None:
    for text in ("хочу красивые ногти", "hello there", "спасибо", ""):
        assert understand(text, now=NOW).when is None


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("+7 (912) 345-67-89", "+79123456789"),
        ("8 912 345 67 89", "+79123456789"),
        ("89123456789", "+79123456789"),
        ("9123456789", "+79123456789"),
        ("мой номер 8-912-345-67-89, звоните", "+79123456789"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 (415) 555-2671", "+14155552671"),
    ],
)
def test_phones(text: str, phone: str) -> None:
    assert find_phone(text) == phone
    assert understand(text, now=NOW).phone == phone


@pytest.mark.parametrize("text", ["15.12 в 11:30", "12345", "завтра в 10", "+7 912", "2026-12-15"])
def test_not_phones(text: str) -> None:
    assert find_phone(text) is None


@pytest.mark.parametrize(
    ("text", "service", "score"),
    [
        ("хочу на маникюр", "manicure", 0.95),
        ("Маникюр", "manicure", 0.95),
        ("нужно сделать ногти", "manicure", 0.85),
        ("I'd like a haircut", "haircut", 0.95),
        ("хочу подстричься", "haircut", 0.85),
        ("сколько стоит чистка лица", None, None),
    ],
)
def test_services(text: str, service: str | None, score: float | None) -> None:
    result = understand(text, now=NOW, services=SERVICES)
    assert result.service == service
    assert result.scores.get("service") == score


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("позовите оператора", "operator"),
        ("хочу поговорить с человеком", "operator"),
        ("Менеджер, пожалуйста", "operator"),
        ("can I talk to a human", "operator"),
        ("это ужасно, хочу пожаловаться", "complaint"),
        ("верните деньги", "complaint"),
        ("terrible service, refund please", "complaint"),
        ("у меня аллергия на лак", "sensitive"),
        ("можно ли делать при беременности?", "sensitive"),
        ("I am pregnant, is it safe?", "sensitive"),
        ("мне нужен юрист", "sensitive"),
        ("назад", "back"),
        ("хочу поменять время", "back"),
        ("go back", "back"),
        ("да", "confirm"),
        ("Да, подтверждаю", "confirm"),
        ("yes", "confirm"),
        ("нет", "cancel"),
        ("отмена", "cancel"),
        ("не надо", "cancel"),
        ("Здравствуйте!", "greeting"),
        ("hi", "greeting"),
    ],
)
def test_intents(text: str, intent: str) -> None:
    result = understand(text, now=NOW)
    assert result.has(intent)
    assert result.scores[intent] >= 0.8


def test_no_is_not_confirm_and_long_text_is_not_a_yes() -> None:
    assert not understand("нет", now=NOW).has("confirm")
    assert not understand("да нет, я не уверена что хочу записываться сейчас", now=NOW).has(
        "confirm"
    )


@pytest.mark.parametrize(
    ("text", "expect", "name", "score"),
    [
        ("меня зовут Анна", None, "Анна", 0.9),
        ("My name is John", None, "John", 0.9),
        ("Анна", "contact", "Анна", 0.75),
        ("мария петрова", "name", "Мария Петрова", 0.75),
        ("Анна +7 912 345-67-89", "contact", "Анна", 0.75),
        ("Анна", None, None, None),  # a bare word is a name only when one was asked
        ("завтра", "contact", None, None),
    ],
)
def test_names(text: str, expect: str | None, name: str | None, score: float | None) -> None:
    result = understand(text, now=NOW, expect=expect)
    assert result.name == name
    assert result.scores.get("name") == score


def test_button_choice_by_text_or_number() -> None:
    choices = ["Сб 28.11 18:00", "Сб 28.11 19:00"]
    assert understand("Сб 28.11 19:00", now=NOW, choices=choices).choice == choices[1]
    assert understand("1", now=NOW, choices=choices).choice == choices[0]
    assert understand("3", now=NOW, choices=choices).choice is None


def test_nothing_understood_has_zero_confidence() -> None:
    result = understand("ываыва", now=NOW, services=SERVICES)
    assert result.confidence == 0.0 and not result.intents


def test_when_serialises_and_merges() -> None:
    when = When(D(2026, 12, 1), earliest=T(18))
    assert When.from_dict(when.as_dict()) == when
    assert when.merged(When(D(2026, 12, 2))) == When(D(2026, 12, 2), earliest=T(18))
    assert when.merged(When(at=T(10))) == When(D(2026, 12, 1), at=T(10))


# --- issue 21: what clients really write -------------------------------------------------------

MONDAY = dt.datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo("Europe/Moscow"))
SALON = [
    Service("manicure", ("Маникюр", "Manicure"), ("ногти", "маник", "nails")),
    Service("pedicure", ("Педикюр", "Pedicure")),
    Service("coloring", ("Окрашивание волос", "Hair colouring"), ("покрасить", "окрашивание")),
    Service("brows", ("Коррекция бровей", "Brows"), ("покрасить брови",)),
    Service("haircut", ("Стрижка", "Haircut"), ("подстричься",)),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8 часов вечера", When(at=T(20))),
        ("в 3:45 вечера", When(at=T(15, 45))),
        ("9 in the evening tomorrow", When(D(2026, 12, 8), at=T(21))),
        ("через 2 дня", When(D(2026, 12, 9))),
        ("через неделю", When(D(2026, 12, 14))),
        ("через 5 дней вечером", When(D(2026, 12, 12), earliest=T(17), latest=T(21))),
        ("на выходных", When(D(2026, 12, 12))),
        ("в вск", When(D(2026, 12, 13))),
        ("послепослезавтра", When(D(2026, 12, 10))),
        ("в четыре часа дня", When(at=T(16))),
        ("в три", When(at=T(15))),
        ("завтра полшестого", When(D(2026, 12, 8), at=T(17, 30))),
        ("без пятнадцати пять", When(at=T(16, 45))),
        ("с 12 до 15", When(earliest=T(12), latest=T(15))),
        ("9:30 - 11:00", When(earliest=T(9, 30), latest=T(11))),
        ("перенесите с четверга на пятницу", When(D(2026, 12, 11))),
        ("двадцать четвертое декабря", When(D(2026, 12, 24))),
    ],
)
def test_days_and_times_clients_write(text: str, expected: When) -> None:
    assert understand(text, now=MONDAY).when == expected


@pytest.mark.parametrize("text", ["в 8", "хочу на маникюр завтра в 8", "в 7"])
def test_a_bare_hour_that_may_be_morning_or_evening_is_asked_not_guessed(text: str) -> None:
    result = understand(text, now=MONDAY)
    assert result.when is None or not result.when.has_time
    assert result.ambiguous_hour == int(text.split()[-1])


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("у меня грибок на ногтях, можно ли делать маникюр?", "medical"),
        ("я беременна, можно ли красить волосы?", "medical"),
        ("я кормлю грудью, можно окрашивание?", "medical"),
        ("можно ли педикюр при псориазе?", "medical"),
        ("у меня варикоз, массаж ног можно?", "medical"),
        ("у меня высокое давление", "medical"),
        ("я пью антибиотики, можно ли красить брови?", "medical"),
        ("у меня аллергия на гель-лак", "medical"),
        ("какие противопоказания?", "medical"),
        ("подам на вас в суд", "legal"),
        ("верните деньги за окрашивание", "refund"),
        ("хочу оставить жалобу на мастера", "complaint"),
    ],
)
def test_safety_topics_hand_off(text: str, topic: str) -> None:
    result = understand(text, now=MONDAY, services=SALON)
    assert result.intents & {"sensitive", "complaint"}
    assert result.topic == topic


@pytest.mark.parametrize("text", ["хочу больше не ходить в другой салон", "верните деньги"])
def test_no_substring_misfires(text: str) -> None:
    result = understand(text, now=MONDAY)
    assert not result.has("sensitive")  # «больше» is not «боль»
    assert not result.has("back")  # «верните деньги» is not «назад»


@pytest.mark.parametrize(
    ("text", "expect", "name"),
    [
        ("Looking for", "name", None),
        ("Мой Номер 89161234567", "contact", None),
        ("Whatsapp +79161234567", "contact", None),
        ("Хочу на маникюр завтра после 6, Аня 89161234567", None, "Аня"),
    ],
)
def test_names_only_where_offered(text: str, expect: str | None, name: str | None) -> None:
    assert understand(text, now=MONDAY, expect=expect).name == name


@pytest.mark.parametrize(
    ("text", "intent"),
    [("👍", "confirm"), ("+", "confirm"), ("угу", "confirm"), ("не получится", "cancel"),
     ("перенесите", "reschedule"), ("can we reschedule to Friday?", "reschedule")],
)  # fmt: skip
def test_reminder_replies_are_understood_by_the_assistant(text: str, intent: str) -> None:
    assert understand(text, now=MONDAY).has(intent)


@pytest.mark.parametrize(
    ("text", "service"),
    [
        ("маникюрчик на субботу", "manicure"),
        ("хочу ноготочки обновить", "manicure"),
        ("нужно окрашевание", "coloring"),
        ("запишите на педекюр", "pedicure"),
        ("хочу покрасить брови", "brows"),
    ],
)
def test_diminutives_typos_and_the_longer_phrase(text: str, service: str) -> None:
    assert understand(text, now=MONDAY, services=SALON).service == service


def test_greetings_are_not_time_wishes_and_a_short_phone_is_not_a_phone() -> None:
    assert understand("Good afternoon", now=MONDAY).when is None
    assert understand("Добрый вечер", now=MONDAY).when is None
    assert find_phone("+7 916 123-45-6") is None
    assert find_phone("+7916123456, Лена") is None


def test_service_matching_cost_does_not_grow_with_synonyms() -> None:
    """40,000 synonyms: the index is built once; a message looks up only its own words."""
    big = [Service(f"s{i}", (f"услуга{i}",), tuple(f"синоним{i}x{j}" for j in range(400)))
           for i in range(100)]  # fmt: skip
    assert understand("хочу синоним7x399", now=MONDAY, services=big).service == "s7"
    from b24app.assistant.understanding import service_index

    assert service_index.cache_info().currsize >= 1
    hits = service_index.cache_info().hits
    understand("хочу синоним9x3 завтра", now=MONDAY, services=big)
    assert service_index.cache_info().hits == hits + 1  # the same index, not rebuilt


def test_safety_vocabulary_per_business_kind_and_per_portal() -> None:
    from b24app.assistant.understanding import safety_vocabulary

    clinic = safety_vocabulary("clinic")
    assert not understand("анализ крови в среду", now=MONDAY, safety=clinic).intents
    assert understand("у меня температура", now=MONDAY, safety=clinic).topic == "medical"
    salon = safety_vocabulary("salon", {"medical": ["ботокс"]})
    result = understand("можно ботокс после чистки?", now=MONDAY, safety=salon)
    assert result.has("sensitive") and result.topic == "medical"
    assert not understand("можно ботокс после чистки?", now=MONDAY).intents


def test_portal_safety_words_are_bounded_by_the_settings_schema() -> None:
    from marshmallow import ValidationError

    from b24app.assistant.settings_form import safety_from_text
    from b24app.settings import AssistantSchema

    words = safety_from_text("medical: ботокс, филлеры\nrefund: компенсация")
    assert words == {"medical": ["ботокс", "филлеры"], "refund": ["компенсация"]}
    AssistantSchema().load({"kind": "clinic", "safety_words": words})
    for bad in ({"kind": "spa"}, {"safety_words": {"gossip": ["x1"]}},
                {"safety_words": {"medical": ["w" * 65]}},
                {"safety_words": {"medical": [f"w{i}" for i in range(101)]}}):  # fmt: skip
        with pytest.raises(ValidationError):
            AssistantSchema().load(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=list("0123456789 :.-+()ачсвдопн,ёЁАВ8"), max_size=300) | st.text())
def test_any_text_reads_without_error(text: str) -> None:
    """Client text is data: whatever it is, the reading ends with a bounded result."""
    result = understand(text + " в 25:99 32.13", now=MONDAY, services=SALON, expect="contact")
    assert json.loads(json.dumps(result.as_dict()))["source"] == "rules"
    assert len(result.text) <= 2000
