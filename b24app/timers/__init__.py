"""The timer engine: timer rows and their RQ wake-up jobs, claim → send → mark, reconciliation.

The policies (what a due timer sends) live in their domains and register here:
:mod:`b24app.sla.alerts` (first reply, call-back, confirmation and robot-started ladders),
:mod:`b24app.appointments.remind` (the client's appointment reminders). See docs/timers.md.
"""
