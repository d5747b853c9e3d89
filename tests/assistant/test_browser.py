"""A person talks to the assistant in the demo's client chat window (real Chromium, real
worker): a whole dialog to a confirmed booking, and asking for a person to see the hand-off."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import AssistantDialog
from devportal.portal import Portal as EmuPortal
from tests.assistant.conftest import enable_assistant
from tests.plugins.browser import screenshot
from tests.plugins.worker import WorkerProcess
from tests.waiting import wait_for

TIMEOUT = 60_000  # ms: generous, the machine is shared


def last_bot(page: Any) -> Any:
    return page.locator("#messages .msg.bot").last


def wait_bot(page: Any, text: str) -> None:
    page.locator("#messages .msg.bot", has_text=text).last.wait_for(timeout=TIMEOUT)


def type_message(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def open_chat(page: Any, portal: EmuPortal) -> None:
    page.goto(portal.page_url("chat"))
    page.click("#start")
    wait_bot(page, "Здравствуйте")


@pytest.fixture
def chat_page(
    installed_portal: EmuPortal, services: Services, rq_worker: WorkerProcess, page: Any
) -> Any:
    enable_assistant(services, installed_portal)
    rq_worker.start()
    open_chat(page, installed_portal)
    return page


def dialog(services: Services) -> AssistantDialog:
    with services.db() as session:
        row = session.scalars(select(AssistantDialog)).one()
        session.expunge(row)
        return row


@pytest.mark.browser
def test_full_dialog_to_a_confirmed_booking(chat_page: Any, services: Services) -> None:
    page = chat_page
    last_bot(page).get_by_role("button", name="Маникюр").click()
    wait_bot(page, "Когда вам удобно")
    type_message(page, "завтра после 18")
    wait_bot(page, "номер телефона")
    type_message(page, "+7 (912) 345-67-89")
    wait_bot(page, "Как к вам обращаться")
    type_message(page, "Анна")
    wait_bot(page, "Свободное время")
    times = last_bot(page).locator(".buttons button")
    chosen = times.first.inner_text()
    times.first.click()
    wait_bot(page, "Подтверждаете")
    last_bot(page).get_by_role("button", name="Да, подтверждаю").click()
    wait_bot(page, "Готово")
    assert chosen in last_bot(page).inner_text()
    assert page.locator("#status").get_attribute("data-holder") == "bot"
    screenshot(page, "assistant-chat-confirmed")
    # the worker sends the reply before it commits the dialog: wait for the commit
    wait_for(lambda: dialog(services).state == "confirmed", what="the confirmed dialog")
    state = dialog(services)
    assert state.state == "confirmed" and state.booking_start is not None
    assert state.slots["phone"] == "+79123456789" and state.slots["name"] == "Анна"


@pytest.mark.browser
def test_asking_for_a_person_shows_the_handoff(chat_page: Any, services: Services) -> None:
    page = chat_page
    type_message(page, "Хочу стрижку, но сначала позовите человека")
    wait_bot(page, "Передаю диалог администратору")
    page.locator("#status[data-holder=operator]").wait_for(timeout=TIMEOUT)
    assert "Мария" in page.locator("#status").inner_text()
    note = page.locator("#messages .msg.note")
    note.wait_for(timeout=TIMEOUT)
    assert "клиент попросил человека" in note.inner_text() and "Стрижка" in note.inner_text()
    page.fill("#operator-text", "Здравствуйте! Это Мария, чем помочь?")
    page.press("#operator-text", "Enter")
    page.locator("#messages .msg.operator", has_text="Это Мария").wait_for(timeout=TIMEOUT)
    screenshot(page, "assistant-chat-handoff")
    wait_for(lambda: dialog(services).operator_notified_at is not None, what="the operator note")
    state = dialog(services)
    assert state.handoff_reason == "operator" and state.operator_notified_at is not None
