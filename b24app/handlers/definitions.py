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
# The client loop (b24app.appointments): Online Booking and open-line messages, each to its own
# handler. Bound only where the portal granted the scope (booking, imopenlines, task): a refusal
# of these does not fail the registration. ONTASKUPDATE reads the outcome question's task back
# (b24app/appointments/question_task.py).
CLIENT_EVENTS: dict[str, str] = {
    "ONBOOKINGADD": "/handlers/booking",
    "ONBOOKINGUPDATE": "/handlers/booking",
    "ONBOOKINGDELETE": "/handlers/booking",
    "ONOPENLINEMESSAGEADD": "/handlers/openlines",
    "ONTASKUPDATE": "/handlers/tasks",
}
