"""Every fact that grants a permit is chained (issue 13 §3): sign-offs and permits are entries,
a permit is granted from them, `ledger verify` checks stored rows against the chain, and
`ledger rebuild` refuses a chain that does not verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday.db import write_connection
from cleanday.domain import Policy, Tier
from cleanday.errors import LedgerIntegrityError, PermitDenied
from cleanday.ledger import LedgerService
from cleanday.models import T_ENTRIES, T_PENDING, T_STATES
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

REGISTERED = at("2026-11-08", 10)  # a Sunday


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(REGISTERED)


@pytest.fixture
def svc(engine: Engine, clock: FakeClock) -> LedgerService:
    return LedgerService(engine, Policy(timezone="UTC"), clock)


def _register(svc: LedgerService, tmp_path: Path, name: str = "tagger", **kw: object) -> None:
    svc.register(write_work_order(tmp_path, name, **kw))


def _kinds(svc: LedgerService, name: str) -> list[str]:
    return [e.kind.value for e in svc.history(name)]


def _sql(engine: Engine, stmt: sa.Executable) -> None:
    with write_connection(engine) as conn:
        conn.execute(stmt)


def test_approval_release_expiry_and_each_permit_are_chained_entries_and_verify_holds(
    svc: LedgerService, clock: FakeClock, tmp_path: Path
) -> None:
    _register(svc, tmp_path, stage_expiry_hours=24)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12), outcome="proposed"))
    svc.approve("tagger", by="ana", door="notion")
    permit = svc.request_permit("tagger", "r1", item_id="r1")
    assert permit.seq is not None and "approved by ana" in permit.reason
    again = svc.request_permit("tagger", "r1", item_id="r1")  # a retry: the same permit
    assert again.seq == permit.seq
    history = svc.history("tagger")
    approved = next(e for e in history if e.kind.value == "approved")
    assert approved.data == {"item_id": "r1", "run_id": "r1", "by": "ana", "door": "notion"}
    permits = [e for e in history if e.kind.value == "permit"]
    assert len(permits) == 1 and permits[0].seq == permit.seq
    assert permits[0].data["item_id"] == "r1" and permits[0].data["tier"] == "A"

    svc.override("tagger", "trust it", tier=Tier.B)
    svc.report_run(report("tagger", "r2", at("2026-11-09", 13), outcome="staged"))
    svc.report_run(report("tagger", "r3", at("2026-11-09", 13, 5), outcome="staged"))
    svc.release("tagger", "r2", door="cli")
    assert svc.request_permit("tagger", "r2", item_id="r2").tier == Tier.B
    clock.set(at("2026-11-10", 14))  # r3 is past its 24 h
    with pytest.raises(PermitDenied, match="released staged item"):
        svc.request_permit("tagger", "r3", item_id="r3")
    kinds = _kinds(svc, "tagger")
    assert kinds.count("released") == 1 and kinds.count("expired") == 1
    assert kinds.count("permit") == 2
    result = svc.verify()
    assert result.ok, result.summary()
    assert result.states == 1


def test_an_approval_written_into_pending_items_grants_no_permit_and_verify_names_it(
    svc: LedgerService, clock: FakeClock, tmp_path: Path, engine: Engine
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12), outcome="proposed"))
    _sql(engine, sa.update(T_PENDING).values(status="approved", decided_by="mallory"))
    with pytest.raises(PermitDenied, match="no approved entry"):
        svc.request_permit("tagger", "r1", item_id="r1")
    result = svc.verify()
    assert not result.ok and not result.problems  # the chain itself is intact
    (problem,) = result.state_problems
    assert problem.behavior == "tagger" and problem.what == "item r1"
    assert "pending_items says 'approved', the chain says 'pending'" in problem.problem
    assert "item r1" in result.summary()


def test_an_edited_accumulator_tier_grants_no_permit_and_verify_names_it(
    svc: LedgerService, clock: FakeClock, tmp_path: Path, engine: Engine
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12)))
    with engine.connect() as conn:
        acc = dict(conn.execute(sa.select(T_STATES.c.accumulator)).scalar_one())
    acc["tier"] = "Wings"
    _sql(engine, sa.update(T_STATES).values(accumulator=acc))
    assert svc.state("tagger").tier == Tier.WINGS  # what the edited row claims
    with pytest.raises(PermitDenied, match="tier A: it may act only on an approved proposal"):
        svc.request_permit("tagger", "r2")
    result = svc.verify()
    assert not result.ok
    (problem,) = result.state_problems
    assert problem.what == "accumulator"
    assert 'tier: stored "Wings", chain "A"' in problem.problem
    assert "folded to seq" in problem.problem
    svc.rebuild()  # the chain verifies, so rebuild may rewrite the state from it
    assert svc.verify().ok and svc.state("tagger").tier == Tier.A


def test_an_edited_tier_column_is_named_by_verify(
    svc: LedgerService, clock: FakeClock, tmp_path: Path, engine: Engine
) -> None:
    _register(svc, tmp_path)
    _sql(engine, sa.update(T_STATES).values(tier="C"))
    (problem,) = svc.verify().state_problems
    assert problem.what == "tier" and "stored tier is 'C', the chain says 'A'" in problem.problem


def test_rebuild_refuses_a_forged_chain_naming_the_first_bad_entry(
    svc: LedgerService, clock: FakeClock, tmp_path: Path, engine: Engine
) -> None:
    _register(svc, tmp_path)
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 12)))
    svc.report_run(report("tagger", "r2", at("2026-11-09", 13)))
    with engine.connect() as conn:
        seq, data = conn.execute(
            sa.select(T_ENTRIES.c.seq, T_ENTRIES.c.data).where(T_ENTRIES.c.key == "run:r1")
        ).one()
        before = conn.execute(sa.select(T_STATES.c.accumulator)).scalar_one()
    forged = {**data, "gates": []}
    forged_override = {"reason": "forged", "kind": "forced_tier", "tier": "Wings"}
    _sql(engine, sa.update(T_ENTRIES).where(T_ENTRIES.c.seq == seq).values(data=forged))
    _sql(
        engine,
        sa.update(T_ENTRIES)
        .where(T_ENTRIES.c.key == "run:r2")
        .values(kind="override", data=forged_override),
    )
    with pytest.raises(LedgerIntegrityError) as refused:
        svc.rebuild()
    message = str(refused.value)
    assert f"first bad entry is seq {seq} (tagger, run_reported)" in message
    assert "Restore the ledger database from a backup" in message
    with engine.connect() as conn:
        assert conn.execute(sa.select(T_STATES.c.accumulator)).scalar_one() == before
    assert svc.state("tagger").tier == Tier.A
    assert json.dumps(before)  # the stored state was left as it was
