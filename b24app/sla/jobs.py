"""The timer job's old address, for jobs already waiting in Redis.

RQ stores a job's function by its import path, and the previous version queued every SLA and
reminder timer as ``b24app.sla.jobs.fire_timer``; they keep firing on time across the upgrade.
Nothing in the code calls this module: remove it one release after the timers package.
"""

from __future__ import annotations

from b24app.timers.fire import fire_timer

__all__ = ["fire_timer"]
