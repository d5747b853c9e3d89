"""Retention of the REST request/response log (``rest_log`` rows written by the client).

The marketplace asks for at least the last 3 days of REST requests and responses, so the
purge never deletes anything younger than :data:`MIN_DAYS` whatever it is asked.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete

from b24app import context
from b24app.storage.models import RestLog
from b24app.storage.models import utc_now

MIN_DAYS = 3


def purge_rest_log(days: int) -> int:
    """Delete REST log rows older than ``days`` (at least 3); return how many went.

    A plain job function (RQ / cron): it takes a primitive and reaches the database through
    :func:`b24app.context.current` (which is why it lives here and not beside the REST client
    that writes the rows: :mod:`b24app.bitrix` stands below the process services).
    """
    keep = max(MIN_DAYS, int(days))
    cutoff = utc_now() - dt.timedelta(days=keep)
    with context.current().db() as session:
        result = session.execute(delete(RestLog).where(RestLog.created_at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
