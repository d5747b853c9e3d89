"""The dialog state machine: the happy path to a confirmed booking, free text filling several
slots at once, going back, and every hand-off reason."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from b24app.assistant.dialog import DialogState
from b24app.assistant.dialog import Reply
from b24app.assistant.dialog import Script
from b24app.assistant.dialog import step
from b24app.assistant.dialog import summary
from b24app.assistant.understanding import Service
from b24app.assistant.understanding import understand
from b24app.assistant.understanding import When

TZ = ZoneInfo("Europe/Moscow")
NOW = dt.datetime(2026, 11, 27, 14, 0, tzinfo=TZ)
SCRIPT = Script(services=[Service("manicure", ("Маникюр", "Manicure"), ("ногти",), 60, 2500)],
                lang="ru", business_name="Салон Лето")  # fmt: skip


def free_times(when: When, duration: int) -> list[dt.datetime]:
    day = when.day or NOW.date() + dt.timedelta(days=1)
    return [dt.datetime.combine(day, dt.time(h)) for h in (18, 19, 20)]


def no_times(when: When, duration: int) -> list[dt.datetime]:
    return []


def say(state: DialogState, text: str, times=free_times, choices=None) -> Reply:  # type: ignore[no-untyped-def]
    u = understand(text, now=NOW, services=SCRIPT.services, expect=state.state,
                   choices=choices or [])  # fmt: skip
    return step(state, u, SCRIPT, times)


def test_full_dialog_to_confirmed() -> None:
    r = say(DialogState(), "Здравствуйте")
    assert "Салон Лето" in r.text and r.state.state == "service" and r.buttons == ["Маникюр"]
    r = say(r.state, "Маникюр")
    assert r.state.state == "when"
    r = say(r.state, "завтра после 18")
    assert r.state.state == "contact" and r.state.when == When(
        dt.date(2026, 11, 28), earliest=dt.time(18)
    )
    r = say(r.state, "+7 (912) 345-67-89")
    assert r.state.state == "name" and r.state.phone == "+79123456789"
    r = say(r.state, "Анна")
    assert r.state.state == "slot" and r.buttons == [
        "Сб 28.11 18:00",
        "Сб 28.11 19:00",
        "Сб 28.11 20:00",
    ]
    assert "1. Сб 28.11 18:00" in r.text  # the options are in the text too (messengers)
    r = say(r.state, "Сб 28.11 19:00", choices=r.buttons)
    assert r.state.state == "confirm" and r.actions == ["prebook"]
    assert r.state.start == "2026-11-28T19:00"
    assert "Анна" in r.text and "+79123456789" in r.text
    r = say(r.state, "да")
    assert r.state.state == "confirmed" and r.actions == ["confirm"]
    r = say(r.state, "спасибо")
    assert r.state.state == "confirmed" and not r.actions


def test_a_time_taken_since_it_was_offered_is_not_booked() -> None:
    """Between the offer and the tap another client pre-booked 19:00: fresh times, no
    pre-booking; the next pick of a free time books as usual."""
    r = say(DialogState(), "Маникюр завтра после 18, +7 912 345-67-89")
    r = say(r.state, "Анна")
    assert r.state.state == "slot" and "Сб 28.11 19:00" in r.buttons

    def taken(when: When, duration: int) -> list[dt.datetime]:
        return [t for t in free_times(when, duration) if t.hour != 19]

    r = say(r.state, "Сб 28.11 19:00", times=taken, choices=r.buttons)
    assert r.actions == [] and r.state.start is None and r.state.state == "slot"
    assert r.text.startswith("Это время уже заняли")
    assert r.buttons == ["Сб 28.11 18:00", "Сб 28.11 20:00"]
    r = say(r.state, "Сб 28.11 20:00", times=taken, choices=r.buttons)
    assert r.actions == ["prebook"] and r.state.start == "2026-11-28T20:00"


def test_one_message_fills_several_slots() -> None:
    r = say(DialogState(), "Хочу на маникюр завтра после 18, меня зовут Анна, 89123456789")
    assert r.state.state == "slot"
    assert (r.state.service, r.state.name, r.state.phone) == ("manicure", "Анна", "+79123456789")


def test_going_back_asks_the_previous_question_again() -> None:
    r = say(DialogState(), "маникюр завтра")
    assert r.state.state == "contact"
    r = say(r.state, "назад")
    assert r.state.state == "when" and r.state.when is None and "вернёмся" in r.text
    r = say(r.state, "назад")
    assert r.state.state == "service" and r.state.service is None


def test_other_time_at_confirmation_offers_times_again() -> None:
    r = say(DialogState(), "маникюр завтра, меня зовут Анна, 89123456789")
    r = say(r.state, "1", choices=r.buttons)
    assert r.state.state == "confirm"
    r = say(r.state, "нет")
    assert r.state.state == "when" and r.state.start is None
    r = say(r.state, "послезавтра")
    assert r.state.state == "slot" and r.state.offered[0].startswith("2026-11-29")


def test_handoff_on_request_complaint_and_sensitive_topic() -> None:
    for text, reason in [("позовите оператора", "operator"), ("это безобразие", "complaint"),
                         ("у меня аллергия", "sensitive")]:  # fmt: skip
        r = say(DialogState(state="when", service="manicure"), text)
        assert r.state.state == "handoff" and r.state.handoff_reason == reason
        assert r.actions == ["handoff"]
        assert say(r.state, "алло?").silent  # the operator has the chat now


def test_low_confidence_twice_hands_off() -> None:
    r = say(DialogState(state="service"), "ываыва")
    assert r.state.state == "service" and r.state.fails == 1 and "не совсем" in r.text
    r = say(r.state, "бла бла")
    assert r.state.state == "handoff" and r.state.handoff_reason == "low_confidence"


def test_an_understood_answer_resets_the_fail_count() -> None:
    r = say(DialogState(state="service"), "ываыва")
    r = say(r.state, "маникюр")
    assert r.state.fails == 0
    r = say(r.state, "ываыва")
    assert r.state.state == "when" and r.state.fails == 1


def test_no_free_time_hands_off() -> None:
    r = say(DialogState(), "маникюр завтра, меня зовут Анна, 89123456789", times=no_times)
    assert r.state.state == "handoff" and r.state.handoff_reason == "no_time"


def test_summary_for_the_operator() -> None:
    state = DialogState(state="handoff", service="manicure", name="Анна", phone="+79123456789",
                        start="2026-11-28T19:00", handoff_reason="operator")  # fmt: skip
    text = summary(state, SCRIPT)
    assert text == ("Передано от ИИ-ассистента (клиент попросил человека). Клиент: Анна. "
                    "Услуга: Маникюр. Предварительная запись: Сб 28.11 19:00. "
                    "Телефон: +79123456789.")  # fmt: skip


def test_state_round_trips_through_storage() -> None:
    r = say(DialogState(), "маникюр завтра после 18, Анна, 89123456789")
    loaded = DialogState.load(r.state.state, r.state.slots(), None)
    assert loaded == r.state


def test_english_script() -> None:
    script = Script(services=SCRIPT.services, lang="en")
    u = understand("manicure tomorrow at 6pm", now=NOW, services=script.services)
    r = step(DialogState(), u, script, free_times)
    assert r.state.state == "contact" and r.text.startswith("Hello!")


def test_replies_to_a_reminder_in_a_confirmed_dialog() -> None:
    confirmed = DialogState(state="confirmed", service="manicure", name="Анна",
                            phone="+79123456789", start="2026-11-28T19:00")  # fmt: skip
    r = say(confirmed, "1")
    assert r.state.state == "confirmed" and r.actions == ["confirm"] and "Ждём" in r.text
    r = say(confirmed, "2")
    assert r.state.state == "handoff" and r.state.handoff_reason == "change_after_confirm"
    r = say(confirmed, "не смогу прийти, надо перенести")
    assert r.state.state == "handoff"
    r = say(confirmed, "спасибо")
    assert r.state.state == "confirmed" and not r.actions


def test_a_bare_hour_is_asked_and_the_wish_is_read_back_before_prebooking() -> None:
    """«в 8» may be 8:00 or 20:00: the assistant asks instead of guessing; the offer of free
    times reads back what it understood, and only the tap on a time pre-books."""
    r = say(DialogState(), "Хочу на маникюр завтра в 8")
    assert r.text == "В 8 утра или в 8 вечера?" and r.buttons == ["08:00", "20:00"]
    assert r.state.service == "manicure" and r.state.when == When(dt.date(2026, 11, 28))
    assert not r.actions
    r = say(r.state, "20:00")
    assert r.state.when == When(dt.date(2026, 11, 28), at=dt.time(20))
    r = say(r.state, "+7 912 345-67-89, Анна")
    assert r.state.state == "slot" and not r.actions
    assert r.text.startswith("Маникюр, суббота 28 ноября, 20:00 — верно?")
    r = say(r.state, "Сб 28.11 20:00", choices=r.buttons)
    assert r.actions == ["prebook"]


def test_a_reminder_reply_after_confirmation_reads_as_the_reminders_read_it() -> None:
    confirmed = DialogState(state="confirmed", service="manicure", start="2026-11-28T19:00")
    assert say(confirmed, "👍").actions == ["confirm"]
    assert say(confirmed, "угу").actions == ["confirm"]
    assert say(confirmed, "не получится").state.state == "handoff"
    assert say(confirmed, "перенесите на пятницу").state.state == "handoff"
    assert say(confirmed, "да, перенесите").state.state == "handoff"  # a reschedule wins


def test_the_operators_summary_never_reads_a_window_as_an_exact_time() -> None:
    r = say(DialogState(), "Маникюр завтра после 18")
    r = say(r.state, "позовите оператора")
    text = summary(r.state, SCRIPT)
    assert "суббота 28 ноября, после 18:00" in text and "2026-11-28 18:00" not in text


def test_a_day_beyond_the_horizon_is_refused_and_the_rest_kept() -> None:
    """«31.12.9999 в 18:00, +7…»: the phone is taken, the day asked again with the last day
    the assistant books; in the confirmation step the pre-booking stays as it was."""
    from dataclasses import replace

    script = replace(SCRIPT, last_day=dt.date(2027, 1, 26))
    u = understand("31.12.9999 в 18:00, +7 (912) 345-67-89", now=NOW, services=script.services,
                   expect="when")  # fmt: skip
    r = step(DialogState(state="when", service="manicure"), u, script, free_times)
    assert "26.01.2027" in r.text and r.state.state == "when" and r.state.when is None
    assert r.state.phone == "+79123456789" and not r.actions
    held = DialogState(state="confirm", service="manicure", when=When(dt.date(2026, 11, 28)),
                       phone="+79123456789", name="Анна", start="2026-11-28T18:00")  # fmt: skip
    u = understand("31.12.9999 после 22", now=NOW, services=script.services, expect="confirm")
    r = step(held, u, script, free_times)
    assert "26.01.2027" in r.text and r.state.start == held.start and not r.actions
    u = understand("26.01.2027 в 18:00", now=NOW, services=script.services, expect="when")
    r = step(DialogState(state="when", service="manicure"), u, script, free_times)
    assert r.state.when is not None and r.state.state == "contact"


def test_a_hold_elsewhere_books_nothing_and_keeps_the_times() -> None:
    from b24app.assistant.dialog import hold_refused

    tapped = DialogState(state="confirm", service="manicure", phone="+79123456789",
                         offered=["2026-11-28T18:00", "2026-11-28T19:00"],
                         start="2026-11-28T18:00")  # fmt: skip
    r = hold_refused(tapped, SCRIPT)
    assert "уже есть предварительная запись" in r.text and not r.actions
    assert r.state.state == "slot" and r.state.start is None
    assert r.buttons == ["Сб 28.11 18:00", "Сб 28.11 19:00"]
