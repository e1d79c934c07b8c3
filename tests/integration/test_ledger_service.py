"""The ledger service on both back ends: registration, run reports, permits, closes, integrity."""

from __future__ import annotations

from datetime import date, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday import ladder
from cleanday.db import write_connection
from cleanday.domain import Decision, Policy, Status, Tier
from cleanday.errors import (
    DecisionError,
    PermitDenied,
    RegistrationError,
    UnknownBehaviorError,
    UnknownItemError,
    WorkOrderError,
)
from cleanday.ledger import LedgerService, RunReport
from cleanday.models import T_ENTRIES, T_JOBS, T_OUTBOX, T_RUNS, T_STATES
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

REGISTERED = at("2026-11-08", 10)  # a Sunday
SUNDAY = date(2026, 11, 22)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(REGISTERED)


@pytest.fixture
def svc(engine: Engine, clock: FakeClock) -> LedgerService:
    return LedgerService(engine, Policy(timezone="UTC"), clock)


def _count(engine: Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


def _kinds(svc: LedgerService, name: str) -> list[str]:
    return [e.kind.value for e in svc.history(name)]


def _register(svc: LedgerService, tmp_path: Path, name: str = "tagger", **kw: object) -> None:
    svc.register(write_work_order(tmp_path, name, **kw))


def _clean_days(
    svc: LedgerService, clock: FakeClock, names: str | list[str], first: date, n: int
) -> None:
    """One clean run a day for each behavior for n days, each day closed just after midnight."""
    for i in range(n):
        d = first + timedelta(days=i)
        clock.set(at(d.isoformat(), 12))
        for name in [names] if isinstance(names, str) else names:
            svc.report_run(report(name, f"{name}-{d}", at(d.isoformat(), 12)))
        clock.set(at((d + timedelta(days=1)).isoformat(), 0, 5))
        svc.close_day(d)


# -- registration -----------------------------------------------------------------------------


def test_registering_logs_the_behavior_at_tier_a_with_its_clock_started(
    svc: LedgerService, tmp_path: Path
) -> None:
    result = svc.register(write_work_order(tmp_path, "tagger"))
    assert (result.status, result.version, result.tier) == ("new", 1, Tier.A)
    [row] = svc.list_behaviors()
    assert (row.name, row.tier, row.status, row.clean_days) == ("tagger", Tier.A, Status.ACTIVE, 0)
    assert _kinds(svc, "tagger") == ["registered"]
    assert svc.get_work_order("tagger").name == "tagger"


def test_re_registering_an_unchanged_file_changes_nothing(
    svc: LedgerService, engine: Engine, tmp_path: Path
) -> None:
    path = write_work_order(tmp_path, "tagger")
    svc.register(path)
    before = _count(engine, T_ENTRIES)
    again = svc.register(path)
    assert again.status == "unchanged"
    assert _count(engine, T_ENTRIES) == before


def test_a_changed_work_order_is_a_new_version_and_a_changed_preset_a_new_preset_version(
    svc: LedgerService, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    v2 = svc.register(write_work_order(tmp_path, "tagger", description="now with more tags"))
    assert (v2.status, v2.version, v2.preset_version) == ("new_version", 2, 1)
    v3 = svc.register(
        write_work_order(tmp_path, "tagger", preset={"name": "p", "model": "local/other"})
    )
    assert (v3.version, v3.preset_version) == (3, 2)
    assert _kinds(svc, "tagger") == ["registered"] * 3


def test_a_key_already_bound_to_another_behavior_is_refused(
    svc: LedgerService, engine: Engine, tmp_path: Path
) -> None:
    key = {"ref": "env:OPENROUTER_KEY_SEO", "cap_usd": 5}
    svc.register(write_work_order(tmp_path, "publish_posts", key=key))
    path = write_work_order(tmp_path, "seo_audit", key=key)
    with pytest.raises(RegistrationError) as info:
        svc.register(path)
    assert str(info.value) == (
        f"work order {path}: key env:OPENROUTER_KEY_SEO is already bound to behavior "
        "publish_posts; each behavior needs its own key"
    )
    assert [r.name for r in svc.list_behaviors()] == ["publish_posts"]


def test_an_invalid_work_order_is_refused_before_anything_is_written(
    svc: LedgerService, engine: Engine, tmp_path: Path
) -> None:
    with pytest.raises(WorkOrderError, match="unknown gate"):
        svc.register(write_work_order(tmp_path, "tagger", gates=[{"name": "vibes"}]))
    assert _count(engine, T_ENTRIES) == 0


# -- run reports ------------------------------------------------------------------------------


def test_reporting_a_run_twice_records_it_once(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 12))
    first = svc.report_run(report("tagger", "r1", at("2026-11-09", 12)))
    entries = _count(engine, T_ENTRIES)
    second = svc.report_run(report("tagger", "r1", at("2026-11-09", 12)))
    assert first.recorded and not second.recorded
    assert "already recorded" in second.message
    assert _count(engine, T_ENTRIES) == entries
    assert _count(engine, T_RUNS) == 1


def test_a_run_for_an_unknown_behavior_is_refused_and_nothing_is_written(
    svc: LedgerService, engine: Engine
) -> None:
    with pytest.raises(UnknownBehaviorError, match="no behavior named 'ghost'"):
        svc.report_run(report("ghost", "r1", at("2026-11-09", 12)))
    assert _count(engine, T_RUNS) == 0


def test_a_failure_midway_writes_nothing_at_all(
    svc: LedgerService,
    engine: Engine,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(svc, tmp_path)
    entries = _count(engine, T_ENTRIES)
    queued = _count(engine, T_OUTBOX)  # the registration's Promotion Ledger row

    def boom(*_a: object, **_k: object) -> object:
        raise RuntimeError("crash while folding")

    monkeypatch.setattr(ladder, "view", boom)
    clock.set(at("2026-11-09", 12))
    with pytest.raises(RuntimeError):
        svc.report_run(report("tagger", "r1", at("2026-11-09", 12), failed_gate="schema"))
    assert _count(engine, T_RUNS) == 0
    assert _count(engine, T_ENTRIES) == entries
    assert _count(engine, T_OUTBOX) == queued


def test_gate_failure_at_c_demotes_to_b_writes_the_audit_trail_and_an_alert(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 9))
    svc.override("tagger", "trusted already", tier=Tier.C)
    clock.set(at("2026-11-09", 12))
    result = svc.report_run(
        report("tagger", "r1", at("2026-11-09", 12), failed_gate="sensitive_info")
    )
    assert result.state.tier == Tier.B
    assert result.state.last_failure_reason == "sensitive_info said no"
    assert result.state.last_gate_failure == date(2026, 11, 9)
    kinds = _kinds(svc, "tagger")
    assert kinds[-3:] == ["run_reported", "gate_failed", "demoted"]
    demoted = svc.history("tagger")[-1].data
    assert (demoted["from"], demoted["to"], demoted["gate"], demoted["run_id"]) == (
        "C",
        "B",
        "sensitive_info",
        "r1",
    )
    with engine.connect() as conn:
        alerts = conn.execute(sa.select(T_OUTBOX).where(T_OUTBOX.c.kind == "demotion_alert")).all()
    [alert] = alerts
    assert alert.channel == "slack"
    assert alert.payload["behavior"] == "tagger"
    assert (alert.payload["from"], alert.payload["to"]) == ("C", "B")
    assert alert.payload["gate"] == "sensitive_info"
    assert alert.payload["reason"] == "sensitive_info said no"
    assert alert.payload["run_id"] == "r1"
    # one Slack message per failing run: the demotion alert replaces the plain failure alert
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "gate_failure_alert") == 0
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "gate_failure_row") == 1


def test_three_gate_failures_in_a_week_at_a_quarantine_and_queue_a_notice(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    for i, day in enumerate(["2026-11-09", "2026-11-10", "2026-11-11"]):
        clock.set(at(day, 12))
        svc.report_run(report("tagger", f"r{i}", at(day, 12), failed_gate="schema"))
    [row] = svc.list_behaviors()
    assert (row.tier, row.status) == (Tier.A, Status.QUARANTINED)
    assert "quarantined" in _kinds(svc, "tagger")
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "quarantine_notice") == 1
    # at A there is no lower tier: each failure is alerted instead
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "gate_failure_alert") == 3
    with pytest.raises(PermitDenied, match="quarantined"):
        svc.request_permit("tagger", "r9")
    svc.resume("tagger")
    assert svc.list_behaviors()[0].status == Status.ACTIVE


def test_trailing_medians_come_from_the_runs_of_the_last_fourteen_days(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    for i, cost in enumerate([0.01, 0.02, 0.03, 9.0]):
        finished = at("2026-11-01", 12) + timedelta(days=5 * i)
        clock.set(finished)
        svc.report_run(
            report(
                "tagger",
                f"r{i}",
                finished,
                cost_usd=cost,
                latency_ms=100.0 * (i + 1),
                output_size=10 * (i + 1),
            )
        )
    clock.set(at("2026-11-17", 0))
    m = svc.trailing_medians("tagger", days=14)
    assert m.runs == 3  # the run of Nov 1 is older than 14 days
    assert m.cost_usd == pytest.approx(0.03)
    assert m.latency_ms == pytest.approx(300.0)
    assert m.output_size == pytest.approx(30.0)


# -- permits ----------------------------------------------------------------------------------


def test_at_a_only_an_approved_proposal_may_act(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12), outcome="proposed"))
    with pytest.raises(PermitDenied, match="approved proposal"):
        svc.request_permit("tagger", "r1")
    with pytest.raises(PermitDenied, match="pending"):
        svc.request_permit("tagger", "r1", item_id="r1")
    assert svc.approve("tagger").items == ["r1"]
    permit = svc.request_permit("tagger", "r1", item_id="r1")
    assert permit.granted and permit.tier == Tier.A


def test_rejecting_a_proposal_is_an_override_and_it_may_not_act(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12), outcome="proposed"))
    svc.reject("tagger", None, reason="off-topic")
    assert _kinds(svc, "tagger")[-1] == "override"
    with pytest.raises(PermitDenied, match="rejected"):
        svc.request_permit("tagger", "r1", item_id="r1")


def test_at_b_only_a_released_staged_item_may_act_before_it_expires(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path, stage_expiry_hours=24)
    clock.set(at("2026-11-09", 9))
    svc.override("tagger", "start at B", tier=Tier.B)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12), outcome="staged"))
    svc.report_run(report("tagger", "r2", at("2026-11-09", 12, 5), outcome="staged"))
    with pytest.raises(PermitDenied, match="released staged item"):
        svc.request_permit("tagger", "r1", item_id="r1")
    svc.release("tagger", "r1")
    assert svc.request_permit("tagger", "r1", item_id="r1").tier == Tier.B
    clock.set(at("2026-11-10", 13))
    with pytest.raises(PermitDenied, match="expired"):
        svc.request_permit("tagger", "r2", item_id="r2")
    with pytest.raises(DecisionError, match="expired"):
        svc.release("tagger", "r2")


def test_items_show_where_each_sign_off_stands_and_an_unreleased_item_reads_expired(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path, stage_expiry_hours=24)
    clock.set(at("2026-11-09", 9))
    svc.override("tagger", "start at B", tier=Tier.B)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12), outcome="staged"))
    svc.report_run(report("tagger", "r2", at("2026-11-09", 12, 5), outcome="staged"))
    assert [i.item_id for i in svc.items("tagger", status="pending")] == ["r1", "r2"]
    svc.release("tagger", "r1")
    released = svc.item("tagger", "r1")
    assert (released.kind, released.status) == ("staged", "released")
    assert released.decided_by == "operator"
    assert [i.item_id for i in svc.items("tagger", status="pending")] == ["r2"]
    clock.set(at("2026-11-10", 13))  # past r2's 24 hours, before any write marks it
    assert svc.item("tagger", "r2").status == "expired"
    assert svc.items("tagger", status="pending") == []
    with pytest.raises(UnknownItemError, match="no proposal or staged item 'r9'"):
        svc.item("tagger", "r9")


def test_at_c_a_permit_is_granted_without_approval_but_never_when_paused_or_retired(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 9))
    svc.override("tagger", "trusted", tier=Tier.C)
    assert svc.request_permit("tagger", "r1").granted
    svc.pause("tagger")
    with pytest.raises(PermitDenied, match="paused"):
        svc.request_permit("tagger", "r1")
    svc.resume("tagger")
    assert svc.request_permit("tagger", "r1").tier == Tier.C
    svc.retire("tagger")
    with pytest.raises(PermitDenied, match="retired"):
        svc.request_permit("tagger", "r1")


def test_a_demotion_mid_run_takes_effect_before_the_act_step(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 9))
    svc.override("tagger", "trusted", tier=Tier.C)
    svc.report_run(report("tagger", "other", at("2026-11-09", 9, 30), failed_gate="policy"))
    with pytest.raises(PermitDenied, match="tier B"):
        svc.request_permit("tagger", "r2")


# -- day and Sunday closes --------------------------------------------------------------------


def test_closing_a_day_twice_changes_nothing_the_second_time(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12)))
    clock.set(at("2026-11-10", 0, 5))
    first = svc.close_day(date(2026, 11, 9))
    entries, states = _count(engine, T_ENTRIES), svc.list_behaviors()
    second = svc.close_day(date(2026, 11, 9))
    assert not first.already_closed and second.already_closed
    assert first.behaviors == 1
    assert _count(engine, T_ENTRIES) == entries
    assert svc.list_behaviors() == states
    assert states[0].clean_days == 1
    assert _count(engine, T_JOBS) == 1


def test_a_day_cannot_be_closed_before_it_is_over(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    clock.set(at("2026-11-09", 23))
    with pytest.raises(DecisionError, match="not over"):
        svc.close_day(date(2026, 11, 9))


def test_seven_clean_days_make_a_candidate_and_a_promote_decision_promotes_on_sunday(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    _register(svc, tmp_path, "poster")
    _clean_days(svc, clock, ["tagger", "poster"], date(2026, 11, 9), 7)
    assert [r.name for r in svc.candidates()] == ["poster", "tagger"]
    clock.set(at("2026-11-22", 10))
    svc.post_review(SUNDAY)
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "review_row") == 2
    svc.decide("tagger", SUNDAY, Decision.PROMOTE, by="ops")
    svc.decide("poster", SUNDAY, Decision.HOLD, by="ops")
    decisions = {r.name: r.decision for r in svc.candidates(SUNDAY)}
    assert decisions == {"tagger": Decision.PROMOTE, "poster": Decision.HOLD}
    clock.set(at("2026-11-23", 0, 10))
    closed = svc.close_sunday(SUNDAY)
    assert (closed.promoted, closed.held) == (["tagger"], ["poster"])
    rows = {r.name: r for r in svc.list_behaviors()}
    assert (rows["tagger"].tier, rows["tagger"].clean_days) == (Tier.B, 0)
    assert rows["poster"].tier == Tier.A
    assert _kinds(svc, "tagger")[-1] == "promoted"
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "promotion_notice") == 1
    entries = _count(engine, T_ENTRIES)
    again = svc.close_sunday(SUNDAY)
    assert again.already_closed and again.promoted == ["tagger"]
    assert _count(engine, T_ENTRIES) == entries


def test_a_decision_is_refused_for_a_non_candidate_or_after_the_review_closed(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-22", 10))
    with pytest.raises(DecisionError, match="not a candidate"):
        svc.decide("tagger", SUNDAY, Decision.PROMOTE)
    with pytest.raises(DecisionError, match="not a Sunday"):
        svc.decide("tagger", date(2026, 11, 21), Decision.PROMOTE)
    clock.set(at("2026-11-23", 10))
    with pytest.raises(DecisionError, match="closed"):
        svc.decide("tagger", SUNDAY, Decision.PROMOTE)


def test_day_close_folds_entries_that_were_stored_without_folding(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    """A bulk load appends entries straight to the chain; the day close catches them up."""
    from cleanday import chain
    from cleanday.chain import NewEntry

    _register(svc, tmp_path)
    r = report("tagger", "bulk-1", at("2026-11-09", 12), failed_gate="schema")
    with write_connection(engine) as conn:
        head = chain.lock_head(conn, clock())
        data = r.model_dump(mode="json", exclude={"behavior", "finished_at", "items"})
        chain.append(
            conn,
            head,
            [NewEntry("tagger", "run_reported", r.finished_at, "run:bulk-1", data)],
            clock(),
        )
    clock.set(at("2026-11-10", 0, 5))
    result = svc.close_day(date(2026, 11, 9))
    assert result.entries_folded == 1
    [row] = svc.list_behaviors()
    assert row.last_gate_failure == date(2026, 11, 9)


# -- integrity --------------------------------------------------------------------------------


def test_verify_passes_on_a_ledger_written_by_the_service(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    _clean_days(svc, clock, "tagger", date(2026, 11, 9), 3)
    result = svc.verify()
    assert result.ok, result.summary()
    assert result.entries == 4


def test_rebuild_recomputes_every_state_and_reports_the_differences(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    _register(svc, tmp_path, "poster")
    _clean_days(svc, clock, "tagger", date(2026, 11, 9), 3)
    assert svc.rebuild().differences == []
    with write_connection(engine) as conn:
        conn.execute(
            sa.update(T_STATES)
            .where(T_STATES.c.behavior == "tagger")
            .values(clean_days=99, tier="C")
        )
    result = svc.rebuild()
    assert result.behaviors == 2
    diffs = {(d.behavior, d.field): (d.stored, d.rebuilt) for d in result.differences}
    assert diffs == {("tagger", "clean_days"): (99, 3), ("tagger", "tier"): ("C", "A")}
    assert {r.name: r.clean_days for r in svc.list_behaviors()} == {"poster": 0, "tagger": 3}
    assert svc.rebuild().differences == []


def test_replay_under_another_policy_writes_nothing(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    _clean_days(svc, clock, "tagger", date(2026, 11, 9), 3)
    entries = _count(engine, T_ENTRIES)
    [row] = svc.replay(Policy(timezone="UTC", clean_day_threshold=2))
    assert (row.name, row.clean_days, row.candidate) == ("tagger", 3, True)
    assert svc.list_behaviors()[0].candidate is False
    assert _count(engine, T_ENTRIES) == entries


def test_run_report_rejects_naive_timestamps() -> None:
    with pytest.raises(ValueError, match="timezone"):
        RunReport.model_validate(
            {
                "behavior": "tagger",
                "run_id": "r1",
                "started_at": "2026-11-09T12:00:00",
                "finished_at": "2026-11-09T12:01:00",
                "outcome": "succeeded",
                "cost_usd": 0,
            }
        )


def test_a_late_run_report_older_than_later_entries_is_folded_in_its_place(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-11", 12))
    svc.report_run(report("tagger", "r-11", at("2026-11-11", 12)))
    # the run of the 10th arrives after the run of the 11th, and it failed a gate
    svc.report_run(report("tagger", "r-10", at("2026-11-10", 12), failed_gate="schema"))
    clock.set(at("2026-11-12", 0, 5))
    svc.close_day(date(2026, 11, 11))
    [row] = svc.list_behaviors()
    assert row.last_gate_failure == date(2026, 11, 10)
    assert row.clean_days == 1  # the 11th, clean, after the failure of the 10th
    assert svc.rebuild().differences == []


def test_concurrent_reports_serialize_into_one_intact_chain(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    import threading

    _register(svc, tmp_path)
    _register(svc, tmp_path, "poster")
    clock.set(at("2026-11-09", 18))
    errors: list[BaseException] = []

    def worker(name: str, k: int) -> None:
        try:
            for i in range(8):
                svc.report_run(report(name, f"{name}-{k}-{i}", at("2026-11-09", 12, i)))
                svc.report_run(report(name, f"{name}-{k}-{i}", at("2026-11-09", 12, i)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(n, k)) for n in ("tagger", "poster") for k in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = svc.verify()
    assert result.ok, result.summary()
    assert result.entries == 2 + 32
    assert svc.rebuild().differences == []


def test_a_demotion_alert_links_to_the_temporal_run(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 9))
    svc.override("tagger", "trusted", tier=Tier.WINGS)
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10), failed_gate="budget"))
    with engine.connect() as conn:
        payload = conn.execute(
            sa.select(T_OUTBOX.c.payload).where(T_OUTBOX.c.kind == "demotion_alert")
        ).scalar_one()
    assert (payload["from"], payload["to"], payload["workflow_id"]) == ("Wings", "C", "wf-r1")


def test_pausing_a_paused_behavior_says_why_it_cannot(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    svc.pause("tagger")
    with pytest.raises(DecisionError, match="cannot pause tagger: it is paused"):
        svc.pause("tagger")


def test_an_idle_day_breaks_the_streak_of_a_behavior_whose_work_order_says_so(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path, idle_days="break")
    _register(svc, tmp_path, "poster")
    _clean_days(svc, clock, ["tagger", "poster"], date(2026, 11, 9), 2)
    assert {r.name: r.clean_days for r in svc.list_behaviors()} == {"poster": 2, "tagger": 2}
    clock.set(at("2026-11-12", 0, 5))
    result = svc.close_day(date(2026, 11, 11))  # nobody ran on the 11th
    assert result.behaviors == 1  # only the behavior an idle day can change is touched
    assert {r.name: r.clean_days for r in svc.list_behaviors()} == {"poster": 2, "tagger": 0}


def test_posting_the_review_twice_queues_its_rows_once(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    _clean_days(svc, clock, "tagger", date(2026, 11, 9), 7)
    clock.set(at("2026-11-22", 8))
    assert [r.name for r in svc.post_review(SUNDAY)] == ["tagger"]
    svc.post_review(SUNDAY)
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "review_row") == 1
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "review_summary") == 1


def test_verify_through_the_service_names_a_tampered_run_report(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    _clean_days(svc, clock, "tagger", date(2026, 11, 9), 2)
    with write_connection(engine) as conn:
        seq = conn.execute(
            sa.select(T_ENTRIES.c.seq).where(T_ENTRIES.c.key == "run:tagger-2026-11-10")
        ).scalar_one()
        conn.execute(
            sa.update(T_ENTRIES).where(T_ENTRIES.c.seq == seq).values(data={"outcome": "fine"})
        )
    result = svc.verify()
    assert [(p.seq, p.behavior, p.kind) for p in result.problems] == [
        (seq, "tagger", "run_reported")
    ]
    assert f"seq {seq} (tagger, run_reported)" in result.summary()


def test_open_builds_a_migrated_ledger_from_settings(tmp_path: Path) -> None:
    from cleanday.config import Settings
    from cleanday.db import current_revision, head_revision

    settings = Settings(CLEANDAY_DATA_DIR=tmp_path / "data", CLEANDAY_TIMEZONE="Europe/Berlin")
    svc = LedgerService.open(settings)
    assert (tmp_path / "data" / "ledger.db").exists()
    assert current_revision(svc.engine) == head_revision()
    assert svc.policy.timezone == "Europe/Berlin"
    svc.engine.dispose()


def test_the_day_close_uses_the_ledgers_time_zone(engine: Engine, tmp_path: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    clock = FakeClock(datetime(2026, 11, 8, 10, tzinfo=ny))
    svc = LedgerService(engine, Policy(timezone="America/New_York"), clock)
    _register(svc, tmp_path)
    # 23:30 in New York on the 9th is already the 10th in UTC: it belongs to the 9th
    late = datetime(2026, 11, 9, 23, 30, tzinfo=ny)
    clock.set(late)
    svc.report_run(report("tagger", "late", late))
    clock.set(datetime(2026, 11, 10, 0, 5, tzinfo=ny))
    assert svc.close_day(date(2026, 11, 9)).behaviors == 1
    assert svc.list_behaviors()[0].clean_days == 1
    clock.set(datetime(2026, 11, 11, 0, 5, tzinfo=ny))
    assert svc.close_day(date(2026, 11, 10)).behaviors == 0


# -- batch ingest -----------------------------------------------------------------------------


def _batch_scenario(svc: LedgerService, clock: FakeClock, tmp_path: Path) -> list[RunReport]:
    """Two behaviors (tagger trusted to C), and a batch that demotes tagger, quarantines poster,
    repeats run IDs, carries a late report, a proposal and a non-UTC offset."""
    wo_dir = tmp_path / "wo"
    wo_dir.mkdir(exist_ok=True)
    _register(svc, wo_dir)
    _register(svc, wo_dir, "poster")
    clock.set(at("2026-11-09", 9))
    svc.override("tagger", "trusted already", tier=Tier.C)
    svc.report_run(report("tagger", "t-already", at("2026-11-09", 10)))
    clock.set(at("2026-11-11", 18))
    berlin = timezone(timedelta(hours=1))
    return [
        report("tagger", "t1", at("2026-11-10", 12)),
        report("poster", "p1", at("2026-11-09", 12), failed_gate="schema"),
        report("tagger", "t1", at("2026-11-10", 12)),  # repeated within the batch
        report("tagger", "t-already", at("2026-11-09", 10)),  # recorded before the batch
        report("tagger", "t2", at("2026-11-11", 12).astimezone(berlin), failed_gate="budget"),
        report("poster", "p2", at("2026-11-10", 12), failed_gate="schema", anomaly="cost"),
        report("tagger", "t-late", at("2026-11-09", 11)),  # older than t1: a refold
        report("poster", "p3", at("2026-11-11", 12), failed_gate="schema"),
        report("tagger", "t3", at("2026-11-11", 13), outcome="proposed"),
    ]


def _snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        entries = conn.execute(
            sa.select(
                T_ENTRIES.c.seq, T_ENTRIES.c.kind, T_ENTRIES.c.at, T_ENTRIES.c.key,
                T_ENTRIES.c.data,
            ).order_by(T_ENTRIES.c.seq)
        ).all()  # fmt: skip
        states = conn.execute(
            sa.select(
                T_STATES.c.behavior, T_STATES.c.tier, T_STATES.c.status, T_STATES.c.accumulator,
                T_STATES.c.last_seq, T_STATES.c.last_change_at,
            ).order_by(T_STATES.c.behavior)
        ).all()  # fmt: skip
        outbox = conn.execute(
            sa.select(T_OUTBOX.c.kind, T_OUTBOX.c.dedupe_key, T_OUTBOX.c.payload)
            # a batch raises one StateChanged per behavior, not one per report: its Promotion
            # Ledger rows are fewer, and the last of each behavior the same (asserted below)
            .where(T_OUTBOX.c.kind != "ledger_row")
            .order_by(T_OUTBOX.c.id)
        ).all()
        last_rows: dict[str, object] = {}
        for r in conn.execute(
            sa.select(T_OUTBOX.c.behavior, T_OUTBOX.c.payload)
            .where(T_OUTBOX.c.kind == "ledger_row")
            .order_by(T_OUTBOX.c.id)
        ):
            last_rows[r.behavior] = {k: v for k, v in r.payload.items() if k != "updated"}
        runs = conn.execute(sa.select(T_RUNS.c.run_id, T_RUNS.c.finished_at).order_by(T_RUNS.c.id))
        return {
            # an override's key is a fresh UUID (so are the hashes after it); the rest must match
            "entries": [
                (r.seq, r.kind, r.at, "override" if r.kind == "override" else r.key, r.data)
                for r in entries
            ],
            "states": [tuple(r) for r in states],
            "outbox": [tuple(r) for r in outbox],
            "ledger_rows": last_rows,
            "runs": [tuple(r) for r in runs.all()],
        }


def test_a_batch_of_reports_writes_exactly_what_reporting_them_one_by_one_writes(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    from cleanday.db import make_engine, migrate

    ref_engine = make_engine(f"sqlite:///{tmp_path / 'one-by-one.db'}")
    migrate(ref_engine)
    ref_clock = FakeClock(REGISTERED)
    ref = LedgerService(ref_engine, Policy(timezone="UTC"), ref_clock)
    one_by_one = [ref.report_run(r) for r in _batch_scenario(ref, ref_clock, tmp_path)]

    batched = svc.report_runs(_batch_scenario(svc, clock, tmp_path))

    assert [r.model_dump() for r in batched] == [r.model_dump() for r in one_by_one]
    assert [r.recorded for r in batched] == [True, True, False, False, True, True, True, True, True]
    assert batched[4].state.tier == Tier.B and "demoted" in batched[4].derived
    assert batched[7].state.status == Status.QUARANTINED
    # the same entries in the same order, states, alerts and runs; the chain verifies
    assert _snapshot(engine) == _snapshot(ref_engine)
    assert svc.verify().ok
    assert svc.rebuild().differences == []
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "demotion_alert") == 1
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "quarantine_notice") == 1
    ref_engine.dispose()


def test_a_batch_with_a_bad_report_writes_nothing_and_names_its_index(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 18))
    svc.report_run(report("tagger", "r0", at("2026-11-09", 9)))
    entries = _count(engine, T_ENTRIES)
    good = report("tagger", "r1", at("2026-11-09", 12))
    with pytest.raises(UnknownBehaviorError, match=r"report 1 \(r2\): no behavior named 'ghost'"):
        svc.report_runs([good, report("ghost", "r2", at("2026-11-09", 12))])
    _register(svc, tmp_path, "poster")
    entries += 1
    with pytest.raises(RegistrationError, match=r"report 1 \(r0\):.*already reported for"):
        svc.report_runs([good, report("poster", "r0", at("2026-11-09", 12))])
    assert _count(engine, T_ENTRIES) == entries
    assert _count(engine, T_RUNS) == 1
    assert svc.report_runs([]) == []
    assert svc.report_runs([good])[0].recorded
    assert svc.verify().ok


def test_batches_reuse_decoded_states_only_while_nobody_else_changed_them(
    svc: LedgerService, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    """The batch ingest keeps each behavior's decoded accumulator between batches; a day close,
    an override, or another ledger process writing the same state in between must be seen."""
    from cleanday.db import make_engine, migrate

    ref_engine = make_engine(f"sqlite:///{tmp_path / 'one-by-one.db'}")
    migrate(ref_engine)
    ref_clock = FakeClock(REGISTERED)
    ref = LedgerService(ref_engine, Policy(timezone="UTC"), ref_clock)
    other = LedgerService(engine, Policy(timezone="UTC"), clock)  # another process, same db

    def both(step: str, when: object, *args: object) -> None:
        for ledger, c in ((svc, clock), (ref, ref_clock)):
            c.set(when)  # type: ignore[arg-type]
            if step == "batch":
                (reports,) = args
                if ledger is svc:
                    ledger.report_runs(reports)  # type: ignore[arg-type]
                else:
                    for r in reports:  # type: ignore[attr-defined]
                        ledger.report_run(r)
            elif step == "other":
                (reports,) = args
                (other if ledger is svc else ledger).report_runs(reports)  # type: ignore[arg-type]
            elif step == "close":
                ledger.close_day(*args)  # type: ignore[arg-type]
            elif step == "override":
                ledger.override("tagger", "trusted already", tier=Tier.C)

    for ledger in (svc, ref):
        _register(ledger, tmp_path)
    both("batch", at("2026-11-09", 13), [report("tagger", "r1", at("2026-11-09", 12))])
    both("other", at("2026-11-09", 15), [report("tagger", "r2", at("2026-11-09", 14))])
    both("batch", at("2026-11-09", 17), [report("tagger", "r3", at("2026-11-09", 16))])
    both("close", at("2026-11-10", 0, 5), date(2026, 11, 9))
    both("batch", at("2026-11-10", 13), [report("tagger", "r4", at("2026-11-10", 12))])
    both("override", at("2026-11-10", 14))
    both("batch", at("2026-11-10", 16), [report("tagger", "r5", at("2026-11-10", 15))])
    both(
        "batch",
        at("2026-11-10", 18),
        [report("tagger", "r6", at("2026-11-10", 17), failed_gate="schema")],
    )

    def states(e: Engine) -> list[tuple[object, ...]]:
        with e.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.select(
                        T_STATES.c.tier, T_STATES.c.status, T_STATES.c.clean_days,
                        T_STATES.c.accumulator,
                    )
                )
            ]  # fmt: skip

    assert states(engine) == states(ref_engine)
    [row] = svc.list_behaviors()
    assert row.tier == Tier.B  # the override's C, demoted by r6's gate failure
    assert svc.rebuild().differences == []
    assert svc.verify().ok
    ref_engine.dispose()
