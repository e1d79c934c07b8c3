"""The Promotion Ledger row's "Spend this period" counts the key's budget period in the ledger's
time zone, as the budget gate does, not UTC's (both back ends)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from cleanday.models import T_OUTBOX
from tests.integration.ledger_fixtures import FakeClock, write_work_order


def _spend(engine: Engine, at: datetime, cost: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into key_spend (behavior, at, estimate_usd, cost_usd, status, "
                "tokens_in, tokens_out, transport, model) "
                "values ('tagger', :at, :c, :c, 'settled', 0, 0, 'openrouter', 'm')"
            ),
            {"at": at, "c": cost},
        )


@pytest.mark.parametrize(
    ("zone", "now", "spends", "expected"),
    [
        # 12:00 UTC on Nov 30 is 01:00 on Dec 1 in Auckland: December has begun there
        ("Pacific/Auckland", datetime(2026, 11, 30, 12, tzinfo=UTC),
         [(datetime(2026, 11, 30, 10, tzinfo=UTC), 1.0),    # Nov 30, 23:00 local
          (datetime(2026, 11, 30, 11, 30, tzinfo=UTC), 0.25)],  # Dec 1, 00:30 local
         0.25),
        # 05:00 UTC on Dec 1 is 21:00 on Nov 30 in Los Angeles: still November there
        ("America/Los_Angeles", datetime(2026, 12, 1, 5, tzinfo=UTC),
         [(datetime(2026, 11, 15, 12, tzinfo=UTC), 2.0),
          (datetime(2026, 12, 1, 3, tzinfo=UTC), 0.5)],  # Nov 30, 19:00 local
         2.5),
    ],
)  # fmt: skip
def test_spend_this_period_is_the_budget_period_in_the_ledgers_time_zone(
    engine: Engine,
    tmp_path: Path,
    zone: str,
    now: datetime,
    spends: list[tuple[datetime, float]],
    expected: float,
) -> None:
    svc = LedgerService(engine, Policy(timezone=zone), FakeClock(now))
    svc.register(write_work_order(tmp_path, "tagger"))  # cap $5 a month
    for at, cost in spends:
        _spend(engine, at, cost)
    svc.pause("tagger", by="operator")
    o = T_OUTBOX.c
    with engine.connect() as conn:
        payloads = conn.execute(
            sa.select(o.payload).where(o.kind == "ledger_row").order_by(o.id)
        ).scalars()
        last = list(payloads)[-1]
    assert last["status"] == "paused"
    assert last["spend_usd"] == pytest.approx(expected)
    assert last["cap_usd"] == 5.0
