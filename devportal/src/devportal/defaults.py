"""Seed data for a new portal: users, departments, lead statuses and sources, event names
and placement codes the portal knows."""

from __future__ import annotations

from typing import Any

DEFAULT_USERS: list[dict[str, Any]] = [
    {"ID": 1, "NAME": "Анна", "LAST_NAME": "Админова", "EMAIL": "admin@salon.test",
     "ADMIN": True, "UF_DEPARTMENT": [1], "WORK_POSITION": "Управляющая"},
    {"ID": 2, "NAME": "Мария", "LAST_NAME": "Менеджерова", "EMAIL": "maria@salon.test",
     "ADMIN": False, "UF_DEPARTMENT": [2], "WORK_POSITION": "Администратор"},
    {"ID": 3, "NAME": "Олег", "LAST_NAME": "Продажин", "EMAIL": "oleg@salon.test",
     "ADMIN": False, "UF_DEPARTMENT": [2], "WORK_POSITION": "Администратор"},
    {"ID": 4, "NAME": "Ирина", "LAST_NAME": "Старшая", "EMAIL": "irina@salon.test",
     "ADMIN": False, "UF_DEPARTMENT": [2], "WORK_POSITION": "Старший администратор"},
]  # fmt: skip

DEFAULT_DEPARTMENTS: list[dict[str, Any]] = [
    {"ID": 1, "NAME": "Салон", "SORT": 500, "PARENT": None, "UF_HEAD": 1},
    {"ID": 2, "NAME": "Ресепшн", "SORT": 500, "PARENT": 1, "UF_HEAD": 4},
]

# (STATUS_ID, ru name, en name, SORT, COLOR, is_success)
LEAD_STATUSES: list[tuple[str, str, str, int, str, bool]] = [
    ("NEW", "Не обработан", "Unassigned", 10, "#2FC6F6", False),
    ("IN_PROCESS", "В работе", "In progress", 20, "#FFA900", False),
    ("PROCESSED", "Обработан", "Processed", 30, "#47E4C2", False),
    ("CONVERTED", "Качественный лид", "Good lead", 50, "#7BD500", True),
    ("JUNK", "Некачественный лид", "Junk lead", 60, "#FF5752", False),
]

LEAD_SOURCES: list[tuple[str, str, str]] = [
    ("CALL", "Звонок", "Call"),
    ("EMAIL", "Электронная почта", "E-Mail"),
    ("WEB", "Веб-сайт", "Website"),
    ("ADVERTISING", "Реклама", "Advertising"),
    ("PARTNER", "Существующий клиент", "Existing client"),
    ("RECOMMENDATION", "По рекомендации", "By recommendation"),
    ("TRADE_SHOW", "Выставка", "Show/Exhibition"),
    ("WEBFORM", "CRM-форма", "CRM form"),
    ("CALLBACK", "Обратный звонок", "Callback"),
    ("RC_GENERATOR", "Генератор продаж", "Sales boost"),
    ("STORE", "Интернет-магазин", "Online store"),
    ("OTHER", "Другое", "Other"),
    ("1|OPENLINE", "Открытая линия - Онлайн-чат", "Open Channel - Live chat"),
    ("2|TELEGRAM", "Открытая линия - Telegram", "Open Channel - Telegram"),
]

KNOWN_EVENTS: frozenset[str] = frozenset(
    {
        "ONAPPINSTALL", "ONAPPUNINSTALL", "ONAPPUPDATE", "ONAPPTEST", "ONOFFLINEEVENT",
        "ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE", "ONCRMLEADUSERFIELDADD",
        "ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE",
        "ONCRMCONTACTADD", "ONCRMCONTACTUPDATE", "ONCRMCONTACTDELETE",
        "ONCRMACTIVITYADD", "ONCRMACTIVITYUPDATE", "ONCRMACTIVITYDELETE",
        "ONCRMTIMELINECOMMENTADD", "ONTASKADD", "ONTASKUPDATE", "ONUSERADD",
        "ONIMBOTMESSAGEADD",
        "ONBOOKINGADD", "ONBOOKINGUPDATE", "ONBOOKINGDELETE",
        "ONOPENLINEMESSAGEADD", "ONOPENLINEMESSAGEUPDATE", "ONOPENLINEMESSAGEDELETE",
        "ONSESSIONSTART", "ONSESSIONFINISH",
    }
)  # fmt: skip

PLACEMENT_CODES: tuple[str, ...] = tuple(
    [
        f"CRM_{entity}_{where}"
        for entity in ("LEAD", "DEAL", "CONTACT", "COMPANY")
        for where in (
            "DETAIL_TAB", "LIST_MENU", "LIST_TOOLBAR", "DETAIL_ACTIVITY", "DETAIL_TOOLBAR",
            "ACTIVITY_TIMELINE_MENU", "DOCUMENTGENERATOR_BUTTON", "ROBOT_DESIGNER_TOOLBAR",
        )
    ]
    + ["CRM_ANALYTICS_MENU", "CRM_ANALYTICS_TOOLBAR", "LEFT_MENU", "REST_APP_URI",
       "USER_PROFILE_MENU", "USER_PROFILE_TOOLBAR", "TASK_VIEW_TAB", "PAGE_BACKGROUND_WORKER",
       "CRM_DETAIL_SEARCH"]
)  # fmt: skip

DEFAULT_SCOPE = "crm,user_brief,department,placement,bizproc,im,task,app,booking,imopenlines,imbot"
