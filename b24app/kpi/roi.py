"""ROI calculator for the AI rollout (pure maths, no Flask, no database).

ROI = (additional profit + cost savings − implementation cost) / implementation cost, over a
horizon of ``months``:

* monthly revenue = leads × conversion × average check (conversion = leads that end in a
  paid visit);
* additional profit per month = (revenue after − revenue before) × margin (100 % by default:
  the owner enters the figure as profit) + monthly cost savings;
* implementation cost over n months = one-off cost + n × monthly cost;
* ROI over n months = (n × additional profit − cost(n)) / cost(n).

The worked example (200 leads/month, 20 %, 1,500 ₽ → 260 leads, 25 %, one-off 25,000 ₽ and
10,000 ₽/month): revenue 60,000 → 97,500, so +37,500 ₽ a month; first month
(37,500 − 35,000) / 35,000 = 7.1 %; twelve months (450,000 − 145,000) / 145,000 = 210.3 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from decimal import ROUND_HALF_UP

CENT = Decimal("0.01")


@dataclass(frozen=True)
class RoiInputs:
    """Before/after figures per month and the rollout's costs (money in the portal currency)."""

    leads_before: Decimal
    conversion_before_pct: Decimal
    check_before: Decimal
    leads_after: Decimal
    conversion_after_pct: Decimal
    check_after: Decimal
    one_off_cost: Decimal
    monthly_cost: Decimal
    monthly_savings: Decimal = Decimal(0)
    margin_pct: Decimal = Decimal(100)
    months: int = 12


@dataclass(frozen=True)
class RoiMonth:
    month: int
    cumulative_gain: Decimal
    cumulative_cost: Decimal
    roi_pct: Decimal | None


@dataclass(frozen=True)
class RoiResult:
    revenue_before: Decimal
    revenue_after: Decimal
    monthly_gain: Decimal  # additional profit + savings per month
    first_month_roi_pct: Decimal | None
    horizon_roi_pct: Decimal | None
    horizon_gain: Decimal
    horizon_cost: Decimal
    payback_month: int | None  # first month whose cumulative gain covers the cumulative cost
    schedule: list[RoiMonth]


def monthly_revenue(leads: Decimal, conversion_pct: Decimal, check: Decimal) -> Decimal:
    """Leads × conversion × average check."""
    return (leads * conversion_pct / 100 * check).quantize(CENT, ROUND_HALF_UP)


def roi_pct(gain: Decimal, cost: Decimal) -> Decimal | None:
    """(gain − cost) / cost × 100 to 0.1, or ``None`` when nothing was spent."""
    if cost <= 0:
        return None
    return ((gain - cost) / cost * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)


def calculate(inputs: RoiInputs) -> RoiResult:
    """The monthly gain, first-month and horizon ROI, payback month and the month-by-month table."""
    months = max(int(inputs.months), 1)
    before = monthly_revenue(inputs.leads_before, inputs.conversion_before_pct, inputs.check_before)
    after = monthly_revenue(inputs.leads_after, inputs.conversion_after_pct, inputs.check_after)
    gain = ((after - before) * inputs.margin_pct / 100 + inputs.monthly_savings).quantize(
        CENT, ROUND_HALF_UP
    )
    schedule = []
    payback: int | None = None
    for month in range(1, months + 1):
        cumulative_gain = gain * month
        cumulative_cost = inputs.one_off_cost + inputs.monthly_cost * month
        if payback is None and cumulative_cost > 0 and cumulative_gain >= cumulative_cost:
            payback = month
        schedule.append(
            RoiMonth(
                month, cumulative_gain, cumulative_cost, roi_pct(cumulative_gain, cumulative_cost)
            )
        )
    return RoiResult(
        revenue_before=before,
        revenue_after=after,
        monthly_gain=gain,
        first_month_roi_pct=schedule[0].roi_pct,
        horizon_roi_pct=schedule[-1].roi_pct,
        horizon_gain=schedule[-1].cumulative_gain,
        horizon_cost=schedule[-1].cumulative_cost,
        payback_month=payback,
        schedule=schedule,
    )


EXAMPLE = RoiInputs(
    leads_before=Decimal(200),
    conversion_before_pct=Decimal(20),
    check_before=Decimal(1500),
    leads_after=Decimal(260),
    conversion_after_pct=Decimal(25),
    check_after=Decimal(1500),
    one_off_cost=Decimal(25000),
    monthly_cost=Decimal(10000),
)
