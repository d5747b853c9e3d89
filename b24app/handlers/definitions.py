"""The events the app binds at install (``event.bind``), all to ``/handlers/events``."""

from __future__ import annotations

# Lead lifecycle, plus activities: an outgoing call/e-mail/chat activity on a lead is a reply.
EVENTS: tuple[str, ...] = (
    "ONCRMLEADADD",
    "ONCRMLEADUPDATE",
    "ONCRMLEADDELETE",
    "ONCRMACTIVITYADD",
    # Deals: a converted lead's journey continues on its deal; simple-mode portals have only deals.
    "ONCRMDEALADD",
    "ONCRMDEALUPDATE",
    "ONCRMDEALDELETE",
)
# App lifecycle events go to the install blueprint's handler.
APP_EVENTS: tuple[str, ...] = ("ONAPPUNINSTALL", "ONAPPUPDATE")
