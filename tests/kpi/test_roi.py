"""ROI calculator: the issue's worked example and the edge cases."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from b24app.kpi import roi


def test_worked_example_from_the_issue() -> None:
    """200→260 leads, 20→25 %, 1,500 ₽, 25,000 + 10,000/month: +37,500/month, 7.1 %, 210.3 %."""
    result = roi.calculate(roi.EXAMPLE)
    assert result.revenue_before == Decimal("60000.00")
    assert result.revenue_after == Decimal("97500.00")
    assert result.monthly_gain == Decimal("37500.00")
    assert result.first_month_roi_pct == Decimal("7.1")  # (37,500 − 35,000) / 35,000
    assert result.horizon_gain == Decimal("450000.00")
    assert result.horizon_cost == Decimal("145000")
    assert result.horizon_roi_pct == Decimal("210.3")  # (450,000 − 145,000) / 145,000
    assert result.payback_month == 1
    assert len(result.schedule) == 12


def test_savings_and_margin_enter_the_monthly_gain() -> None:
    """Margin 40 % of +37,500 plus 5,000 savings = 20,000 a month; pays back in month 3."""
    inputs = dataclasses.replace(
        roi.EXAMPLE, margin_pct=Decimal(40), monthly_savings=Decimal(5000), months=6
    )
    result = roi.calculate(inputs)
    assert result.monthly_gain == Decimal("20000.00")
    assert result.first_month_roi_pct == Decimal("-42.9")  # (20,000 − 35,000) / 35,000
    assert result.payback_month == 3  # 60,000 ≥ 55,000
    assert result.horizon_roi_pct == Decimal("41.2")  # (120,000 − 85,000) / 85,000


def test_no_cost_and_no_gain_do_not_crash() -> None:
    """Zero implementation cost → ROI None; a worse 'after' never pays back."""
    free = roi.calculate(
        dataclasses.replace(roi.EXAMPLE, one_off_cost=Decimal(0), monthly_cost=Decimal(0))
    )
    assert (free.first_month_roi_pct, free.horizon_roi_pct, free.payback_month) == (
        None,
        None,
        None,
    )
    worse = roi.calculate(dataclasses.replace(roi.EXAMPLE, leads_after=Decimal(100)))
    assert worse.monthly_gain < 0 and worse.payback_month is None
