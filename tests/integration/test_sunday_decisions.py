"""The Sunday decision rule on both back ends: Promote/Hold only during the Sunday of its review
(in the ledger's time zone) and only for a behavior in that review; a refusal names the rule and
the next review; each decision keeps who and which door; of two, the later stands and both stay
in the ledger."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from cleanday.domain import Decision, Policy, Tier
from cleanday.errors import DecisionRefused
from cleanday.ledger import LedgerService
from cleanday.ledger.decisions import A_SUNDAY, IN_THE_REVIEW, ON_ITS_SUNDAY
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

SUNDAY = date(2026, 11, 22)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2026-11-08", 10))


def _ledger(engine: Engine, clock: FakeClock, tmp_path: Path, tz: str = "UTC") -> LedgerService:
    """tagger seven days clean (a candidate in the review of SUNDAY), poster registered only."""
    svc = LedgerService(engine, Policy(timezone=tz), clock, review_hour=8)
    for name in ("tagger", "poster"):
        svc.register(write_work_order(tmp_path, name))
    for i in range(7):
        d = date(2026, 11, 9) + timedelta(days=i)
        clock.set(at(d.isoformat(), 12))
        svc.report_run(report("tagger", f"tagger-{d}", at(d.isoformat(), 12)))
        clock.set(at((d + timedelta(days=1)).isoformat(), 0, 5))
        svc.close_day(d)
    return svc


def _close(svc: LedgerService, clock: FakeClock) -> list[str]:
    clock.set(at("2026-11-23", 1))
    return svc.close_sunday(SUNDAY).promoted


def test_a_decision_on_the_saturday_before_its_review_is_refused_and_promotes_nothing(
    engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    svc = _ledger(engine, clock, tmp_path)
    assert [r.name for r in svc.candidates(SUNDAY)] == ["tagger"]
    clock.set(at("2026-11-21", 15))  # Saturday
    with pytest.raises(DecisionRefused) as refused:
        svc.decide("tagger", SUNDAY, Decision.PROMOTE, by="ops", door="cli")
    assert refused.value.rule == ON_ITS_SUNDAY
    assert refused.value.next_review == datetime(2026, 11, 22, 8, tzinfo=ZoneInfo("UTC"))
    message = str(refused.value)
    assert ON_ITS_SUNDAY in message and "it is Saturday 2026-11-21" in message
    assert "Next review: Sunday 2026-11-22 at 08:00 (UTC)" in message
    assert svc.decisions(SUNDAY) == []
    assert _close(svc, clock) == [] and svc.state("tagger").tier is Tier.A


def test_a_decision_after_its_sunday_is_refused_naming_next_weeks_review(
    engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    svc = _ledger(engine, clock, tmp_path)
    clock.set(at("2026-11-23", 0, 30))  # Monday, the review not closed by its job yet
    with pytest.raises(DecisionRefused, match="closed at the end of that Sunday") as refused:
        svc.decide("tagger", SUNDAY, Decision.PROMOTE)
    assert refused.value.rule == ON_ITS_SUNDAY
    assert "Next review: Sunday 2026-11-29 at 08:00" in str(refused.value)


def test_the_sunday_of_a_review_is_a_day_in_the_ledgers_time_zone(
    engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    svc = _ledger(engine, clock, tmp_path, tz="Europe/Berlin")
    clock.set(datetime(2026, 11, 21, 23, 30, tzinfo=ZoneInfo("UTC")))  # Sunday 00:30 in Berlin
    svc.decide("tagger", SUNDAY, Decision.HOLD, by="ops", door="cli")
    clock.set(datetime(2026, 11, 22, 23, 30, tzinfo=ZoneInfo("UTC")))  # Monday 00:30 in Berlin
    with pytest.raises(DecisionRefused) as refused:
        svc.decide("tagger", SUNDAY, Decision.PROMOTE, by="ops", door="cli")
    assert refused.value.next_review == datetime(2026, 11, 29, 8, tzinfo=BERLIN)
    assert "Next review: Sunday 2026-11-29 at 08:00 (Europe/Berlin)" in str(refused.value)
    assert [d.decision for d in svc.decisions(SUNDAY)] == [Decision.HOLD]


def test_a_decision_for_a_behavior_not_in_the_review_names_that_rule(
    engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    svc = _ledger(engine, clock, tmp_path)
    clock.set(at("2026-11-22", 10))
    with pytest.raises(DecisionRefused, match="poster is not a candidate") as refused:
        svc.decide("poster", SUNDAY, Decision.PROMOTE)
    assert refused.value.rule == IN_THE_REVIEW and IN_THE_REVIEW in str(refused.value)
    with pytest.raises(DecisionRefused) as saturday:
        svc.decide("tagger", date(2026, 11, 21), Decision.PROMOTE)
    assert saturday.value.rule == A_SUNDAY


def test_each_decision_keeps_who_made_it_through_which_door_and_when(
    engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    svc = _ledger(engine, clock, tmp_path)
    clock.set(at("2026-11-22", 9))
    svc.decide("tagger", SUNDAY, Decision.HOLD, by="ops", door="pane")
    clock.set(at("2026-11-22", 11))
    svc.decide("tagger", SUNDAY, Decision.PROMOTE, by="ana", door="cli")
    first, second = svc.decisions(SUNDAY)
    assert (first.by, first.door, first.decided_at, first.stands) == (
        "ops", "pane", at("2026-11-22", 9), False
    )  # fmt: skip
    assert (second.by, second.door, second.decided_at, second.stands) == (
        "ana", "cli", at("2026-11-22", 11), True
    )  # fmt: skip
    assert _close(svc, clock) == ["tagger"]


def test_an_older_decision_that_arrives_later_is_kept_as_superseded_and_the_later_one_stands(
    engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    svc = _ledger(engine, clock, tmp_path)
    clock.set(at("2026-11-22", 10))
    svc.decide("tagger", SUNDAY, Decision.PROMOTE, by="ops", door="cli")
    clock.set(at("2026-11-22", 10, 5))  # Notion's edit of 9:30, read only now
    late = svc.decide(
        "tagger", SUNDAY, Decision.HOLD, by="ana", door="notion", decided_at=at("2026-11-22", 9, 30)
    )
    standing = f"promote by ops (cli) decided {at('2026-11-22', 10).isoformat()}"
    assert late.superseded_by == standing and not late.stands
    log = svc.decisions(SUNDAY)
    assert [(d.door, d.stands) for d in log] == [("cli", True), ("notion", False)]
    assert {r.name: r.decision for r in svc.candidates(SUNDAY)}["tagger"] == Decision.PROMOTE
    shown = [e.data for e in svc.history("tagger") if e.kind.value == "decision"]
    assert shown[-1]["superseded_by"].startswith("promote by ops (cli)")
    assert _close(svc, clock) == ["tagger"]
    rebuilt = svc.rebuild()  # the ladder replays it the same way from the entries
    assert rebuilt is not None and svc.state("tagger").tier is Tier.B
