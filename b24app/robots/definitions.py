"""Robots registered at install with ``bizproc.robot.add`` (HANDLER is added by the installer
as ``{PUBLIC_URL}/robots/<CODE>``). Names, descriptions and labels in Russian and English.

Every robot waits for our answer (``USE_SUBSCRIPTION=Y``): the job sends its return values
with ``bizproc.event.send``, so the workflow can use them in conditions.
"""

from __future__ import annotations

from typing import Any

LEAD_DOCUMENT_TYPE = ["crm", "CCrmDocumentLead", "LEAD"]
DEAL_DOCUMENT_TYPE = ["crm", "CCrmDocumentDeal", "DEAL"]
# Offered in the automation rules of leads and deals (simple-mode portals have only deals).
LEAD_FILTER: dict[str, Any] = {
    "INCLUDE": [["crm", "CCrmDocumentLead"], ["crm", "CCrmDocumentDeal"]]
}

MARK_AI = "b24app_mark_ai"
SLA_START = "b24app_sla_start"
SLA_STOP = "b24app_sla_stop"
REMINDERS = "b24app_reminders"
QUALIFY = "b24app_qualify"
KPI_SNAPSHOT = "b24app_kpi_snapshot"

# Select options: value -> title. Titles are plain strings in Bitrix24, so they carry both
# languages; the values are what the handler receives and validates.
AI_CHANNELS: dict[str, str] = {
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
    "instagram": "Instagram",
    "vk": "ВКонтакте / VK",
    "avito": "Авито / Avito",
    "openline": "Открытая линия / Open line",
    "website": "Чат на сайте / Website chat",
    "phone_bot": "Голосовой бот / Voice bot",
    "other": "Другой / Other",
}
SLA_POLICIES: dict[str, str] = {
    "first_reply": "Первый ответ / First reply",
    "confirmation": "Подтверждение записи / Booking confirmation",
    "callback": "Перезвонить / Call-back",
    "custom": "Свой срок / Custom",
}
REMIND_BEFORE: dict[str, str] = {
    "24h": "За 24 часа / 24 hours before",
    "2h": "За 2 часа / 2 hours before",
    "custom": "Свой срок (минуты) / Custom (minutes)",
}
REMINDER_TEMPLATES: dict[str, str] = {"default": "Стандартный / Default"}
VERDICTS: dict[str, str] = {
    "qualified": "Квалифицирован / Qualified",
    "needs_human": "Нужен менеджер / Needs a human",
    "junk": "Мусор / Junk",
}
SLA_STATUSES: dict[str, str] = {
    "ok": "В срок / On time",
    "breached": "Нарушен / Breached",
    "pending": "Идёт / Running",
    "none": "Нет таймера / No timer",
}


def _name(ru: str, en: str) -> dict[str, str]:
    return {"ru": ru, "en": en}


def _robot(
    code: str,
    name: dict[str, str],
    description: dict[str, str],
    properties: dict[str, dict[str, Any]],
    returns: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    return {
        "CODE": code,
        "NAME": name,
        "DESCRIPTION": description,
        "USE_SUBSCRIPTION": "Y",
        "DOCUMENT_TYPE": list(LEAD_DOCUMENT_TYPE),
        "FILTER": LEAD_FILTER,
        "PROPERTIES": properties,
        "RETURN_PROPERTIES": returns,
    }


ROBOTS: list[dict[str, Any]] = [
    _robot(
        MARK_AI,
        _name("Отметить как AI-лид", "Mark as AI-lead"),
        _name(
            "Помечает лид как пришедший от ИИ-ассистента или чат-бота (поле «AI-лид» и "
            "комментарий в таймлайне, один раз).",
            "Tags the lead as coming from an AI assistant or chatbot (the AI-lead field and "
            "one timeline comment).",
        ),
        {
            "channel": {
                "Name": _name("Канал", "Channel"),
                "Type": "select",
                "Options": AI_CHANNELS,
                "Required": "N",
                "Multiple": "N",
                "Default": "other",
            },
            "note": {
                "Name": _name("Примечание", "Note"),
                "Type": "string",
                "Required": "N",
                "Multiple": "N",
            },
        },
        {"tagged": {"Name": _name("Отмечен", "Tagged"), "Type": "bool"}},
    ),
    _robot(
        SLA_START,
        _name("Запустить SLA-таймер", "Start SLA timer"),
        _name(
            "Запускает таймер ответа: напоминание ответственному и эскалация руководителю, "
            "если лид не обработан вовремя.",
            "Starts a response timer: a reminder to the responsible user and an escalation "
            "to the owner if the lead is not handled in time.",
        ),
        {
            "policy": {
                "Name": _name("Политика", "Policy"),
                "Type": "select",
                "Options": SLA_POLICIES,
                "Required": "Y",
                "Multiple": "N",
                "Default": "first_reply",
            },
            "minutes": {
                "Name": _name("Минуты (для своего срока)", "Minutes (for custom)"),
                "Type": "int",
                "Required": "N",
                "Multiple": "N",
            },
            "working_time": {
                "Name": _name("Только рабочее время", "Working time only"),
                "Type": "bool",
                "Required": "N",
                "Multiple": "N",
            },
            "escalate_to": {
                "Name": _name("Эскалировать", "Escalate to"),
                "Type": "user",
                "Required": "N",
                "Multiple": "N",
            },
        },
        {"due_at": {"Name": _name("Срок", "Due at"), "Type": "datetime"}},
    ),
    _robot(
        SLA_STOP,
        _name("Остановить SLA-таймер / Ответ дан", "Stop SLA timer / Mark replied"),
        _name(
            "Фиксирует первый ответ клиенту и отменяет SLA-таймеры лида.",
            "Records the first reply to the client and cancels the lead's SLA timers.",
        ),
        {},
        {
            "response_seconds": {
                "Name": _name("Время ответа, сек", "Response time, s"),
                "Type": "int",
            }
        },
    ),
    _robot(
        REMINDERS,
        _name("Напоминания о записи", "Schedule appointment reminders"),
        _name(
            "Планирует напоминания клиенту о записи (за 24 часа, за 2 часа или в свой срок).",
            "Schedules reminders about the appointment (24 h, 2 h before, or custom).",
        ),
        {
            "appointment_time": {
                "Name": _name("Время записи", "Appointment time"),
                "Type": "datetime",
                "Required": "Y",
                "Multiple": "N",
            },
            "service": {
                "Name": _name("Услуга", "Service"),
                "Type": "string",
                "Required": "N",
                "Multiple": "N",
            },
            "remind_before": {
                "Name": _name("Напомнить за", "Remind before"),
                "Type": "select",
                "Options": REMIND_BEFORE,
                "Required": "Y",
                "Multiple": "Y",
                "Default": ["24h", "2h"],
            },
            "custom_minutes": {
                "Name": _name("Свой срок, минут до записи", "Custom, minutes before"),
                "Type": "int",
                "Required": "N",
                "Multiple": "N",
            },
            "template": {
                "Name": _name("Шаблон", "Template"),
                "Type": "select",
                "Options": REMINDER_TEMPLATES,
                "Required": "N",
                "Multiple": "N",
                "Default": "default",
            },
        },
        {
            "reminders_scheduled": {
                "Name": _name("Запланировано напоминаний", "Reminders scheduled"),
                "Type": "int",
            }
        },
    ),
    _robot(
        QUALIFY,
        _name("Квалифицировать лид", "Qualify lead"),
        _name(
            "Оценивает три ответа чат-бота (услуга, желаемое время, контакт): квалифицирован, "
            "нужен менеджер или мусор. При низкой уверенности передаёт лид менеджеру.",
            "Judges the chatbot's three answers (service, desired time, contact): qualified, "
            "needs a human or junk. Below the confidence threshold the lead goes to a manager.",
        ),
        {
            "goal": {
                "Name": _name("Цель / услуга", "Goal / service"),
                "Type": "text",
                "Required": "N",
                "Multiple": "N",
            },
            "desired_time": {
                "Name": _name("Желаемое время", "Desired time"),
                "Type": "string",
                "Required": "N",
                "Multiple": "N",
            },
            "contact": {
                "Name": _name("Контакт", "Contact"),
                "Type": "string",
                "Required": "N",
                "Multiple": "N",
            },
        },
        {
            "verdict": {"Name": _name("Вердикт", "Verdict"), "Type": "select", "Options": VERDICTS},
            "confidence": {"Name": _name("Уверенность", "Confidence"), "Type": "double"},
        },
    ),
    _robot(
        KPI_SNAPSHOT,
        _name("KPI лида", "Lead KPI snapshot"),
        _name(
            "Возвращает время первого ответа и статус SLA лида — для условий в роботах.",
            "Returns the lead's first-reply time and SLA status, for use in conditions.",
        ),
        {},
        {
            "first_reply_seconds": {
                "Name": _name("Первый ответ, сек", "First reply, s"),
                "Type": "int",
            },
            "sla_status": {
                "Name": _name("Статус SLA", "SLA status"),
                "Type": "select",
                "Options": SLA_STATUSES,
            },
        },
    ),
]

ROBOTS_BY_CODE: dict[str, dict[str, Any]] = {robot["CODE"]: robot for robot in ROBOTS}


def robot_fields(public_url: str) -> list[dict[str, Any]]:
    """Full ``bizproc.robot.add`` params, HANDLER built from the public URL."""
    base = public_url.rstrip("/")
    return [{**robot, "HANDLER": f"{base}/robots/{robot['CODE']}"} for robot in ROBOTS]


def label(code: str, key: str, lang: str) -> str:
    """The property's name in ``lang`` (``ru`` or ``en``), or the key itself."""
    prop = ROBOTS_BY_CODE.get(code, {}).get("PROPERTIES", {}).get(key)
    if not prop:
        return key
    name = prop["Name"]
    return str(name.get(lang) or name.get("en") or key)


def robot_name(code: str, lang: str) -> str:
    """The robot's name in ``lang``."""
    name = ROBOTS_BY_CODE.get(code, {}).get("NAME", {})
    return str(name.get(lang) or name.get("en") or code)
