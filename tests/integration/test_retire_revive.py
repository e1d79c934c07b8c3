"""Retiring a behavior and bringing it back, on both back ends: no reports and no permits once
retired, its key free for another behavior, hidden from the listing, and `--revive` back at A
with a fresh clock that verify, rebuild and replay agree with."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday.config import Settings
from cleanday.db import write_connection
from cleanday.domain import Policy, Status, Tier
from cleanday.errors import BehaviorRetired, PermitDenied, RegistrationError
from cleanday.ledger import LedgerService
from cleanday.models import T_ENTRIES
from cleanday.router.tables import RoutingBinding
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

REGISTERED = at("2026-11-08", 10)  # a Sunday
_BINDINGS = RoutingBinding.__table__  # type: ignore[attr-defined]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(REGISTERED)


@pytest.fixture
def svc(engine: Engine, clock: FakeClock) -> LedgerService:
    return LedgerService(engine, Policy(timezone="UTC"), clock)


def _kinds(svc: LedgerService, name: str) -> list[str]:
    return [e.kind.value for e in svc.history(name)]


def _retired_at_c(svc: LedgerService, clock: FakeClock, tmp_path: Path) -> Path:
    """tagger: two clean days, forced to C, then retired on Nov 11."""
    path = write_work_order(tmp_path, "tagger")
    svc.register(path)
    for day in ("2026-11-09", "2026-11-10"):
        clock.set(at(day, 12))
        svc.report_run(report("tagger", f"r-{day}", at(day, 12)))
    clock.set(at("2026-11-11", 9))
    svc.override("tagger", "trusted by hand", tier=Tier.C)
    svc.retire("tagger", reason="replaced by tagger2")
    return path


def test_a_retired_behavior_accepts_no_run_report_single_or_batch_and_nothing_is_written(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _retired_at_c(svc, clock, tmp_path)
    svc.register(write_work_order(tmp_path, "other"))
    before = len(svc.history("tagger"))
    late = report("tagger", "late-1", at("2026-11-11", 10))
    with pytest.raises(BehaviorRetired, match=r"tagger is retired.*--revive PATH"):
        svc.report_run(late)
    with pytest.raises(BehaviorRetired, match=r"report 1 \(late-2\): tagger is retired"):
        svc.report_runs(
            [
                report("other", "o-1", at("2026-11-11", 10)),
                report("tagger", "late-2", late.finished_at),
            ]
        )
    assert len(svc.history("tagger")) == before
    assert _kinds(svc, "other") == ["registered"]  # the batch was all or nothing
    # a retry of a run recorded before the retirement is still the idempotent "already recorded"
    again = svc.report_run(report("tagger", "r-2026-11-10", at("2026-11-10", 12)))
    assert again.recorded is False


def test_a_retired_behavior_gets_no_permit_and_its_chain_says_so(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _retired_at_c(svc, clock, tmp_path)
    with pytest.raises(PermitDenied, match=r"retired.*--revive PATH"):
        svc.request_permit("tagger", "r-x")


def test_retiring_releases_the_key_for_another_behavior_and_logs_it(
    svc: LedgerService,
    clock: FakeClock,
    tmp_path: Path,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_work_order(tmp_path, "tagger")
    svc.register(path)
    now = REGISTERED
    with write_connection(engine) as conn:  # what a worker's router binding holds
        conn.execute(
            sa.insert(_BINDINGS).values(
                behavior="tagger", key_ref="env:TEST_KEY_TAGGER", cap_usd=5.0, cadence="month",
                transports=["local"], guardrails={}, bound_at=now, updated_at=now,
            )
        )  # fmt: skip
    heir = tmp_path / "heir"
    heir.mkdir()
    same_key = {"key": {"ref": "env:TEST_KEY_TAGGER", "cap_usd": 2.0}}
    with pytest.raises(RegistrationError, match="already bound to behavior tagger"):
        svc.register(write_work_order(heir, "tagger2", **same_key))
    with caplog.at_level(logging.INFO, logger="cleanday.ledger.retirement"):
        svc.retire("tagger")
    assert "tagger retired: its key env:TEST_KEY_TAGGER is released for reuse" in caplog.text
    released = [e for e in svc.history("tagger") if e.kind.value == "key_released"]
    assert [e.data["key_ref"] for e in released] == ["env:TEST_KEY_TAGGER"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(_BINDINGS.c.behavior)).all() == []
    result = svc.register(write_work_order(heir, "tagger2", **same_key))
    assert (result.status, result.tier) == ("new", Tier.A)
    assert svc.verify().ok


def test_the_listing_hides_retired_behaviors_unless_asked_for_all(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _retired_at_c(svc, clock, tmp_path)
    svc.register(write_work_order(tmp_path, "other"))
    assert [r.name for r in svc.list_behaviors()] == ["other"]
    every = {r.name: r.status for r in svc.list_behaviors(include_retired=True)}
    assert every == {"other": Status.ACTIVE, "tagger": Status.RETIRED}


def test_registering_a_retired_name_again_is_refused_naming_revive(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    path = _retired_at_c(svc, clock, tmp_path)
    with pytest.raises(
        BehaviorRetired, match=r"tagger is retired.*cleanday register --revive PATH"
    ):
        svc.register(path)  # unchanged
    changed = write_work_order(tmp_path, "tagger", description="tagger, rewritten")
    with pytest.raises(BehaviorRetired, match="--revive"):
        svc.register(changed)
    assert svc.state("tagger").status is Status.RETIRED
    with pytest.raises(RegistrationError, match="cannot revive ghost: it is not registered"):
        svc.register(write_work_order(tmp_path, "ghost"), revive=True)
    svc.register(write_work_order(tmp_path, "other"))
    with pytest.raises(RegistrationError, match="cannot revive other: it is not retired"):
        svc.register(write_work_order(tmp_path, "other"), revive=True)


def test_revive_brings_it_back_at_a_with_a_fresh_clock_and_the_chain_agrees(
    svc: LedgerService, clock: FakeClock, tmp_path: Path, engine: Engine
) -> None:
    path = _retired_at_c(svc, clock, tmp_path)
    clock.set(at("2026-11-12", 9))
    result = svc.register(path, revive=True)
    assert (result.status, result.tier, result.version) == ("revived", Tier.A, 1)
    assert "revived at tier A" in result.message
    state = svc.state("tagger")
    assert (state.tier, state.status, state.clean_days) == (Tier.A, Status.ACTIVE, 0)
    assert state.tier_since == at("2026-11-12", 9)
    assert _kinds(svc, "tagger")[-3:] == ["retired", "key_released", "revived"]
    assert "tagger" in [r.name for r in svc.list_behaviors()]
    # the clock runs again from zero: one clean day after the revival counts one
    svc.report_run(report("tagger", "after-1", at("2026-11-12", 12)))
    clock.set(at("2026-11-13", 0, 5))
    svc.close_day(date(2026, 11, 12))
    assert svc.state("tagger").clean_days == 1
    # at A it acts only on an approved proposal: a permit follows the revival, not tier C
    with pytest.raises(PermitDenied, match="tier A"):
        svc.request_permit("tagger", "after-1")
    check = svc.verify()
    assert check.ok, check.summary()
    assert svc.rebuild().differences == []
    [replayed] = [r for r in svc.replay(Policy(timezone="UTC")) if r.name == "tagger"]
    assert (replayed.tier, replayed.status, replayed.clean_days) == (Tier.A, Status.ACTIVE, 1)
    with engine.connect() as conn:
        revived = conn.execute(
            sa.select(T_ENTRIES.c.data).where(T_ENTRIES.c.kind == "revived")
        ).scalar_one()
    assert revived["version"] == 1 and revived["source"] == str(path)


def test_revive_with_a_changed_work_order_is_a_new_version_and_may_retire_again(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _retired_at_c(svc, clock, tmp_path)
    clock.set(at("2026-11-12", 9))
    changed = write_work_order(tmp_path, "tagger", description="tagger, rewritten")
    result = svc.register(changed, revive=True)
    assert (result.status, result.version) == ("revived", 2)
    assert svc.state("tagger").version == 2
    assert svc.get_work_order("tagger").description == "tagger, rewritten"
    clock.set(at("2026-11-13", 9))
    svc.retire("tagger")  # a second retirement releases the key again
    assert _kinds(svc, "tagger").count("key_released") == 2
    assert svc.rebuild().differences == []
    assert svc.verify().ok


def test_revive_binds_its_key_in_the_router_again_for_a_worker_that_holds_its_version(
    svc: LedgerService, clock: FakeClock, tmp_path: Path, engine: Engine
) -> None:
    from cleanday.router import Router

    path = _retired_at_c(svc, clock, tmp_path)
    with engine.connect() as conn:
        assert conn.execute(sa.select(_BINDINGS.c.behavior)).all() == []
    svc.register(path, revive=True)
    with engine.connect() as conn:
        bound = conn.execute(sa.select(_BINDINGS)).one()
    assert (bound.behavior, bound.key_ref, bound.cap_usd) == ("tagger", "env:TEST_KEY_TAGGER", 5.0)
    router = Router.from_settings(Settings(), engine)
    assert router._binding("tagger").key_ref == "env:TEST_KEY_TAGGER"
