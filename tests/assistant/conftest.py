"""Shared helpers of the assistant tests: an installed portal with the assistant enabled, a
client chat bound to a new open-line lead, and a way to talk in it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from b24app.context import Services
from b24app.settings import save_settings
from b24app.storage.portals import get_portal
from devportal import DevPortal
from devportal.portal import Portal as EmuPortal


def enable_assistant(services: Services, emu_portal: EmuPortal, **changes: Any) -> None:
    """The admin attaches the bot to open line 1 and enables the assistant in settings."""
    with emu_portal.lock:
        emu_portal.imbot.attach(1)
    with services.db() as session:
        portal = get_portal(session, emu_portal.member_id)
        assert portal is not None
        save_settings(session, portal.id, {"assistant": {"enabled": True, **changes}})


@dataclass
class ClientChat:
    """A client writing to the salon from Telegram: an open-line chat bound to a lead."""

    emulator: DevPortal
    portal: EmuPortal
    chat_id: int
    lead_id: int
    settle: Callable[[], None]

    def bot_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.portal.chat_messages(self.chat_id) if m["kind"] == "bot"]

    def last_reply(self) -> str:
        visible = [m for m in self.bot_messages() if m["id"] not in self.portal.imbot.system]
        return str(visible[-1]["text"]) if visible else ""

    def buttons(self) -> list[str]:
        messages = self.bot_messages()
        keyboard = self.portal.imbot.keyboards.get(messages[-1]["id"]) if messages else None
        return [b["TEXT"] for b in (keyboard or {}).get("BUTTONS", []) if "TEXT" in b]

    def say(self, text: str) -> str:
        self.portal.client_writes(self.chat_id, text)
        self.settle()
        return self.last_reply()


def open_client_chat(
    emulator: DevPortal, portal: EmuPortal, settle: Callable[[], None]
) -> ClientChat:
    lead_id = portal.add_lead({"TITLE": "Telegram", "SOURCE_ID": "1|TELEGRAMBOT",
                               "ASSIGNED_BY_ID": 2})  # fmt: skip
    chat = portal.open_chat([("lead", lead_id)], connector_id="telegrambot")
    client = ClientChat(emulator, portal, chat.id, lead_id, settle)
    settle()
    return client


@pytest.fixture
def assistant_portal(installed_portal: EmuPortal, services: Services) -> EmuPortal:
    enable_assistant(services, installed_portal)
    return installed_portal


@pytest.fixture
def settle_jobs(emulator: DevPortal, run_jobs: Callable[..., None]) -> Callable[[], None]:
    """Deliver what the emulator queued, then run the jobs in-process (twice: jobs may
    cause events that cause jobs)."""

    def settle() -> None:
        for _ in range(2):
            assert emulator.wait_idle()
            run_jobs()

    return settle
