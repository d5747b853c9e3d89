"""A scaled load burst (bench/load_burst.py): 250 lead events over 5 portals through gunicorn
and two real workers — nothing lost, no duplicate record or timer, no REST limit hit.

Each portal gets 50 events, as many as the emulator's bucket holds (burst 50), as in the
bench's full run; fewer portals only shorten the run (the bench measures the full size)."""

from __future__ import annotations

import pytest

from bench.load_burst import run_burst


@pytest.mark.slow
def test_burst_is_acknowledged_and_processed_without_loss() -> None:
    """Every event acknowledged and recorded once; the leaky buckets were never overrun."""
    result = run_burst(events=250, portals=5, gunicorn_workers=2, rq_workers=2)
    print("\n" + result.table())
    assert result.acknowledged == result.events and result.non_200 == 0
    assert result.lead_rows == result.events
    assert result.duplicate_lead_rows == 0
    assert result.timer_rows > 0 and result.duplicate_timers == 0
    assert result.limit_hits == 0
