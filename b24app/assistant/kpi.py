"""The assistant's KPIs for a period (dialogs started in ``[start, end)``, naive UTC):

* **dialogs**; **booked** (a pre-booking was made) and **confirmed** — their share of the
  dialogs is "handled to a booking";
* **came** — confirmed dialogs whose journey reached Came (bot → booking → came);
* **hand-offs** and their rate, by reason (operator, complaint, sensitive, low_confidence,
  no_time, change_after_confirm, disabled);
* **answer time** — median and p90 from the event's arrival to the answer sent, over the
  turns answered in the period;
* **model** — share of turns the model was asked for.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.storage.models import AssistantDialog
from b24app.storage.models import AssistantTurn
from b24app.storage.models import Journey


def _pct(numerator: int, denominator: int) -> float | None:
    return round(numerator * 100.0 / denominator, 1) if denominator else None


def _quantile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def assistant_kpis(
    session: Session, portal_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    in_period = (
        AssistantDialog.portal_id == portal_id,
        AssistantDialog.created_at >= start,
        AssistantDialog.created_at < end,
    )
    rows = session.execute(
        select(
            AssistantDialog.state,
            AssistantDialog.handoff_reason,
            AssistantDialog.booked_at,
            AssistantDialog.booking_start,
            AssistantDialog.confirmed_at,
            Journey.came_at,
        )
        .outerjoin(
            Journey,
            (Journey.portal_id == AssistantDialog.portal_id)
            & (Journey.lead_id == AssistantDialog.lead_id),
        )
        .where(*in_period)
    ).all()
    dialogs = len(rows)
    booked = sum(1 for r in rows if r.booking_start is not None or r.confirmed_at is not None)
    confirmed = sum(1 for r in rows if r.confirmed_at is not None)
    came = sum(1 for r in rows if r.confirmed_at is not None and r.came_at is not None)
    reasons: dict[str, int] = {}
    for r in rows:
        if r.state == "handoff":
            key = r.handoff_reason or "operator"
            reasons[key] = reasons.get(key, 0) + 1
    handoffs = sum(reasons.values())
    times = list(
        session.scalars(
            select(AssistantTurn.total_ms)
            .join(AssistantDialog, AssistantDialog.id == AssistantTurn.dialog_id)
            .where(
                AssistantDialog.portal_id == portal_id,
                AssistantTurn.received_at >= start,
                AssistantTurn.received_at < end,
                AssistantTurn.answered_at.is_not(None),
            )
        )
    )
    model_turns = session.scalar(
        select(func.count())
        .select_from(AssistantTurn)
        .join(AssistantDialog, AssistantDialog.id == AssistantTurn.dialog_id)
        .where(
            AssistantDialog.portal_id == portal_id,
            AssistantTurn.received_at >= start,
            AssistantTurn.received_at < end,
            AssistantTurn.source.in_(("model", "rules_fallback")),
        )
    )
    return {
        "dialogs": dialogs,
        "booked": booked,
        "booked_pct": _pct(booked, dialogs),
        "confirmed": confirmed,
        "confirmed_pct": _pct(confirmed, dialogs),
        "came": came,
        "came_pct": _pct(came, confirmed),
        "handoffs": handoffs,
        "handoff_pct": _pct(handoffs, dialogs),
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "answer_median_s": _quantile(times, 0.5),
        "answer_p90_s": _quantile(times, 0.9),
        "turns": len(times),
        "model_pct": _pct(int(model_turns or 0), len(times)),
    }
