"""A county's year, simulated through the engine (engine/simulate.py) on SQLite and PostgreSQL, small
enough for the suite: requests assessed and reviews held day by day, every day swept and sent. After
it the record is whole: every breach recorded once with its history entry, the hash chain intact
(the sweep now writes a batch's breach entries together), each instance's state its last entry's,
every message sent once and none left queued; and a database with cases in it is refused."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from engine import audit
from engine.app import App
from engine.clock import FixedClock
from engine.errors import ConfigError
from engine.simulate import simulate

START = date(2026, 1, 5)


def test_a_small_county_runs_a_quarter_and_leaves_the_record_whole(core: App, clock: FixedClock) -> None:
    year = simulate(core, clock, plans=40, requests=120, start=START, days=90, seed=7)
    assert year.plans == 40 and 25 <= year.requests <= 35  # 120 a year, over 90 days
    assert year.steps > 50 and year.breaches > 0 and year.messages > 0 and not year.refused
    assert len(year.by_week) == 13 and sum(w.get("messages", 0) for w in year.by_week) == year.messages
    with core.engine.connect() as conn:
        breached = conn.execute(text("SELECT count(*) FROM deadline WHERE breached_on IS NOT NULL")).scalar_one()
        entries = conn.execute(text("SELECT count(*) FROM history WHERE trigger = 'deadline_breached'")).scalar_one()
        assert breached == entries == year.breaches
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all())
        assert statuses.get("queued", 0) == 0 and statuses.get("sent", 0) == year.messages
        keys = conn.execute(text("SELECT count(*), count(DISTINCT key) FROM outbox")).one()
        assert keys[0] == keys[1]
    checked = audit.verify(core.engine)  # the chain whole, and every state and version its last entry's
    assert checked.intact and checked.entries > year.steps, checked.breaks
    with pytest.raises(ConfigError, match="empty database"):
        simulate(core, clock, plans=1, requests=0, start=START, days=1)
