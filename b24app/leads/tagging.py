"""Tag a journey as an AI-lead from a robot or the assistant, which may act before the app has
seen the lead's (or deal's) event: the journey is recorded first, then tagged once by
:func:`b24app.leads.tag_writes.tag_recorded` (what "once" means is told there). The intakes,
which have just recorded the journey, call that directly.
"""

from __future__ import annotations

from b24app import logs
from b24app.context import Services
from b24app.leads.intake import process
from b24app.leads.kinds import DEAL
from b24app.leads.kinds import LEAD
from b24app.leads.lifecycle import get_lead
from b24app.leads.tag_writes import tag_recorded
from b24app.storage.models import Portal


def tag_ai_lead(
    services: Services, portal_id: int, lead_id: int, channel: str, note: str | None = None
) -> bool:
    """Write the AI-lead field and one timeline comment on a journey (``lead_id``: a lead id,
    or minus a deal id); False if already tagged. When the app has no record of the journey
    yet (a robot ran before the lead's event was processed) it is fetched first.

    :raise BitrixError: the portal refused the write (the lead stays untagged for a retry).
    """
    with services.db() as session:
        portal = session.get(Portal, portal_id)
        if portal is None:
            return False
        member_id = portal.member_id
        known = get_lead(session, portal_id, lead_id) is not None
    if not known:
        with logs.bind(member_id=member_id, lead_id=lead_id):
            kind = LEAD if lead_id > 0 else DEAL
            process(kind, services, member_id, abs(lead_id), auto_tag=False)
    return tag_recorded(services, portal_id, lead_id, channel, note)
