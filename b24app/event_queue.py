"""How event jobs run: their queue, their retries, and how long a failed one is kept.

Shared by the event jobs (:mod:`b24app.handlers.jobs`) and the coalesced intake's drainer
continuations (:mod:`b24app.leads.coalesce`), which are event work too: the domain module
enqueues its continuation without importing the jobs module above it.
"""

from __future__ import annotations

from rq import Retry

QUEUE = "events"
RETRY = Retry(max=3, interval=[5, 30, 120])
FAILURE_TTL = 7 * 86400
