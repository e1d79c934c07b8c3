"""The ledger's clocks and audit survive an outage: the start-up catch-up closes every missed day
and Sunday in order, once; a listed row is never older than the latest ended day; a late report
that takes back a tier change leaves its own entry and alert."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday.config import Settings
from cleanday.db import make_engine
from cleanday.domain import Decision, Policy, Tier
from cleanday.ledger import LedgerService
from cleanday.ledger.permits import chain_standing
from cleanday.models import T_ENTRIES, T_JOBS, T_OUTBOX, T_STATES
from cleanday.presets import PresetStore
from cleanday.scheduler import catch_up_job
from cleanday.service.app import create_app
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

BERLIN = ZoneInfo("Europe/Berlin")


def _local(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), BERLIN).astimezone(UTC)


def _berlin(engine: Engine, clock: FakeClock) -> LedgerService:
    return LedgerService(engine, Policy(timezone="Europe/Berlin"), clock)


def _clean_day(svc: LedgerService, clock: FakeClock, name: str, d: date, *, close: bool) -> None:
    """One clean run at noon (Berlin) on `d`; with `close`, the day-close job just after."""
    clock.set(_local(d, 12))
    svc.report_run(report(name, f"{name}-{d}", _local(d, 12)))
    if close:
        clock.set(_local(d + timedelta(days=1), 0, 1))
        svc.close_day(d)


def _stored(engine: Engine, name: str) -> tuple[str, int]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(T_STATES.c.tier, T_STATES.c.clean_days).where(T_STATES.c.behavior == name)
        ).one()
    return str(row.tier), int(row.clean_days)


def _jobs(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(T_JOBS.c.job_key).order_by(T_JOBS.c.id)).scalars())


def _count(engine: Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


# -- 1. the start-up catch-up -----------------------------------------------------------------

MONDAY = date(2026, 11, 9)
THURSDAY, FRIDAY, SATURDAY = (MONDAY + timedelta(days=n) for n in (3, 4, 5))


def test_catch_up_after_thursday_to_saturday_closes_thursday_and_friday_once(
    engine: Engine, tmp_path: Path
) -> None:
    clock = FakeClock(_local(MONDAY, 9))
    svc = _berlin(engine, clock)
    svc.register(write_work_order(tmp_path, "notes"))
    for d in (MONDAY, MONDAY + timedelta(days=1), MONDAY + timedelta(days=2)):
        _clean_day(svc, clock, "notes", d, close=True)
    _clean_day(svc, clock, "notes", THURSDAY, close=False)  # down from Thursday 20:00 ...
    clock.set(_local(SATURDAY, 9))  # ... to Saturday 09:00
    catch_up_job(svc, BERLIN, clock)
    assert _jobs(engine)[-2:] == [f"day_close:{THURSDAY}", f"day_close:{FRIDAY}"]
    assert _stored(engine, "notes") == ("A", 4)  # Monday to Thursday, as `/state` says
    assert svc.state("notes").clean_days == 4
    assert [r.clean_days for r in svc.list_behaviors()] == [4]
    entries, jobs = _count(engine, T_ENTRIES), _jobs(engine)
    catch_up_job(svc, BERLIN, clock)  # a second start changes nothing
    assert (_count(engine, T_ENTRIES), _jobs(engine)) == (entries, jobs)


def test_a_day_an_earlier_catch_up_skipped_is_still_owed(engine: Engine, tmp_path: Path) -> None:
    """The catch-up before this one closed only yesterday: Thursday stayed open behind it."""
    clock = FakeClock(_local(MONDAY, 9))
    svc = _berlin(engine, clock)
    svc.register(write_work_order(tmp_path, "notes"))
    _clean_day(svc, clock, "notes", MONDAY, close=True)
    _clean_day(svc, clock, "notes", THURSDAY, close=False)
    clock.set(_local(SATURDAY, 9))
    svc.close_day(FRIDAY)  # what the old catch-up did
    missed = svc.missed_closes(SATURDAY)
    assert (missed.days, missed.sundays) == ([MONDAY + timedelta(days=n) for n in (1, 2, 3)], [])
    catch_up_job(svc, BERLIN, clock)
    assert svc.missed_closes(SATURDAY).days == []
    assert _stored(engine, "notes") == ("A", 2)


def test_two_instances_catching_up_at_once_close_each_day_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    clock = FakeClock(_local(MONDAY, 9))
    svc = _berlin(engine, clock)
    svc.register(write_work_order(tmp_path, "notes"))
    _clean_day(svc, clock, "notes", MONDAY, close=True)
    _clean_day(svc, clock, "notes", MONDAY + timedelta(days=1), close=False)
    clock.set(_local(MONDAY + timedelta(days=12), 9))  # twelve days down, a Sunday among them
    engines = [make_engine(database_url) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def instance(e: Engine) -> None:
        try:
            start.wait()
            catch_up_job(_berlin(e, clock), BERLIN, clock)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=instance, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        e.dispose()
    assert errors == []
    jobs = _jobs(engine)
    assert len(jobs) == len(set(jobs))
    days = [MONDAY + timedelta(days=n) for n in range(12)]
    assert sorted(j for j in jobs if j.startswith("day_close:")) == [f"day_close:{d}" for d in days]
    assert [j for j in jobs if j.startswith("sunday_close:")] == ["sunday_close:2026-11-15"]
    assert _stored(engine, "notes") == ("A", 2)


def test_catch_up_across_spring_forward_closes_each_day_and_every_missed_sunday_in_order(
    engine: Engine, tmp_path: Path
) -> None:
    """Berlin moves to summer time on Sunday 29 March 2026 (a 23-hour day). The operator decides
    Promote in the review on Sunday 29 March at 09:00; the service is down from 10:00 that day
    to Tuesday 7 April 09:00, over two Sundays; the decision is carried out at start-up."""
    first, sunday = date(2026, 3, 21), date(2026, 3, 29)
    clock = FakeClock(_local(first, 9))
    svc = _berlin(engine, clock)
    svc.register(write_work_order(tmp_path, "notes"))
    for i in range(8):
        _clean_day(svc, clock, "notes", first + timedelta(days=i), close=True)
    clock.set(_local(sunday, 9))  # decisions are taken during the review's Sunday only
    svc.decide("notes", sunday, Decision.PROMOTE, by="ops")
    clock.set(_local(date(2026, 4, 7), 9))
    catch_up_job(svc, BERLIN, clock)
    missed = [sunday + timedelta(days=n) for n in range(9)]
    expected = []
    for d in missed:
        expected.append(f"day_close:{d}")
        if d.weekday() == 6:
            expected.append(f"sunday_close:{d}")
    assert _jobs(engine)[-len(expected) :] == expected
    promoted = [e for e in svc.history("notes") if e.kind.value == "promoted"]
    assert [(p.data["week"], p.data["from"], p.data["to"]) for p in promoted] == [
        ("2026-03-29", "A", "B")
    ]
    # the review closes at Monday 00:00 local, summer time by then: 22:00 UTC on Sunday
    assert promoted[0].at == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert _stored(engine, "notes") == ("B", 0)
    jobs = _jobs(engine)
    catch_up_job(svc, BERLIN, clock)
    assert _jobs(engine) == jobs


# -- 2. listed rows are current ---------------------------------------------------------------


async def test_listed_rows_agree_with_state_when_no_day_was_ever_closed(
    engine: Engine, tmp_path: Path
) -> None:
    clock = FakeClock(at("2026-11-09", 9))
    svc = LedgerService(engine, Policy(timezone="UTC", clean_day_threshold=3), clock)
    names = [f"b{i}" for i in range(6)]
    for name in names:
        svc.register(write_work_order(tmp_path, name))
    for i, name in enumerate(names):  # b0 runs one day, b5 six days; no day is ever closed
        for n in range(i + 1):
            d = date(2026, 11, 9) + timedelta(days=n)
            clock.set(at(d.isoformat(), 12))
            svc.report_run(report(name, f"{name}-{n}", at(d.isoformat(), 12)))
    clock.set(at("2026-11-16", 10))
    truth = {n: svc.state(n) for n in names}
    assert [truth[n].clean_days for n in names] == [1, 2, 3, 4, 5, 6]
    # what the rows stored by the reports say: the last day of each never counted
    assert [_stored(engine, n)[1] for n in names] == [0, 1, 2, 3, 4, 5]

    want = {n: (s.tier.value, s.clean_days, s.candidate) for n, s in truth.items()}
    listed = {r.name: (r.tier.value, r.clean_days, r.candidate) for r in svc.list_behaviors()}
    assert listed == want
    assert [r.name for r in svc.candidates()] == ["b2", "b3", "b4", "b5"]

    settings = Settings(CLEANDAY_TOKEN="test-token-clocks", CLEANDAY_SCHEDULER=False)
    transport = httpx.ASGITransport(app=create_app(settings, svc), client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        api = (await client.get("/api/v1/behaviors")).raise_for_status().json()
        page = (await client.get("/")).raise_for_status().text
    assert {r["name"]: (r["tier"], r["clean_days"], r["candidate"]) for r in api} == want
    for n in names:  # each Pane row's clean-day meter reads what `/state` says
        meter = f'aria-label="{truth[n].clean_days} of 3 clean days to candidacy for B"'
        table = page[page.index('<table class="behaviors">') :]
        row = table[table.index(f'<a href="/behaviors/{n}">') :]
        assert meter in row[: row.index("</tr>")], n


def test_once_yesterday_is_closed_the_list_reads_the_stored_rows(
    engine: Engine, tmp_path: Path
) -> None:
    clock = FakeClock(at("2026-11-09", 9))
    svc = LedgerService(engine, Policy(timezone="UTC"), clock)
    svc.register(write_work_order(tmp_path, "notes"))
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("notes", "r1", at("2026-11-09", 12)))
    clock.set(at("2026-11-10", 0, 0))  # the day has ended; its close has not run yet
    assert [r.clean_days for r in svc.list_behaviors()] == [1]
    assert _stored(engine, "notes") == ("A", 0)
    svc.close_day(date(2026, 11, 9))
    assert _stored(engine, "notes") == ("A", 1)
    assert [r.clean_days for r in svc.list_behaviors()] == [1]


# -- 3. a late report that takes back a tier change -------------------------------------------

SUNDAY = date(2026, 11, 22)


def _promoted_at_b(svc: LedgerService, clock: FakeClock, tmp_path: Path) -> None:
    svc.register(write_work_order(tmp_path, "notes"))
    for i in range(7):  # seven clean days at A: a candidate in the review of Nov 22
        d = date(2026, 11, 9) + timedelta(days=i)
        clock.set(at(d.isoformat(), 12))
        svc.report_run(report("notes", f"r-{d}", at(d.isoformat(), 12)))
        clock.set(at((d + timedelta(days=1)).isoformat(), 0, 5))
        svc.close_day(d)
    clock.set(at("2026-11-22", 10))
    svc.decide("notes", SUNDAY, Decision.PROMOTE, by="ops")
    clock.set(at("2026-11-23", 0, 10))
    assert svc.close_sunday(SUNDAY).promoted == ["notes"]
    assert svc.state("notes").tier == Tier.B


def test_a_late_failed_run_from_before_the_sunday_close_demotes_back_with_an_entry_and_alert(
    engine: Engine, tmp_path: Path
) -> None:
    clock = FakeClock(at("2026-11-08", 10))
    svc = LedgerService(engine, Policy(timezone="UTC"), clock)
    _promoted_at_b(svc, clock, tmp_path)
    clock.set(at("2026-11-23", 9))
    # a run that finished on Saturday failed a gate; its report arrives after the promotion
    late = report("notes", "r-late", at("2026-11-21", 18), failed_gate="schema")
    result = svc.report_run(late)
    assert result.state.tier == Tier.A
    assert "notes demoted to tier A" in result.message
    history = svc.history("notes")
    kinds = [e.kind.value for e in history]
    assert kinds.count("promoted") == 1 and kinds[-3:] == ["run_reported", "gate_failed", "demoted"]
    demoted = history[-1]
    assert (demoted.data["from"], demoted.data["to"], demoted.data["cause"]) == (
        "B",
        "A",
        "reversal",
    )
    assert (demoted.data["gate"], demoted.data["run_id"]) == ("schema", "r-late")
    assert demoted.key.startswith("reversed:tier:")
    with engine.connect() as conn:
        [alert] = conn.execute(
            sa.select(T_OUTBOX.c.payload).where(T_OUTBOX.c.kind == "demotion_alert")
        ).scalars()
    assert (alert["from"], alert["to"], alert["run_id"], alert["workflow_id"]) == (
        "B",
        "A",
        "r-late",
        "wf-r-late",
    )
    # one Slack message for the failing run: the demotion alert replaces the plain failure alert
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.kind == "gate_failure_alert") == 0
    pubs = PresetStore(engine).publications("notes")
    assert [(p.tier, p.reason) for p in pubs][-1] == ("A", "demotion: schema failed")

    # permits follow the chain's newest tier entry: it says A now, not the promotion's B
    with engine.connect() as conn:
        assert chain_standing(conn, "notes")[0] == Tier.A
    # the audit stays whole, and nothing refolded later writes the reversal twice
    assert svc.verify().ok
    assert svc.rebuild().differences == []
    assert [(r.name, r.tier) for r in svc.replay(Policy(timezone="UTC"))] == [("notes", Tier.A)]
    entries = _count(engine, T_ENTRIES)
    clock.set(at("2026-11-24", 0, 5))
    svc.close_day(date(2026, 11, 23))
    svc.report_run(report("notes", "r-later", at("2026-11-23", 20)))
    assert _count(engine, T_ENTRIES, T_ENTRIES.c.kind == "demoted") == 1
    assert _count(engine, T_ENTRIES) == entries + 1
    assert [r.tier for r in svc.list_behaviors()] == [Tier.A]


def test_a_late_failed_run_out_of_order_reverses_the_promotion_and_demotes_once(
    engine: Engine, tmp_path: Path
) -> None:
    """At B before the review, a promotion to C; a failed run of the Saturday before arrives
    after entries of Monday: the refold both takes back B→C and demotes B→A, each an entry."""
    clock = FakeClock(at("2026-11-08", 10))
    svc = LedgerService(engine, Policy(timezone="UTC"), clock)
    svc.register(write_work_order(tmp_path, "notes"))
    clock.set(at("2026-11-08", 11))
    svc.override("notes", "trusted already", tier=Tier.B)
    for i in range(7):
        d = date(2026, 11, 9) + timedelta(days=i)
        clock.set(at(d.isoformat(), 12))
        svc.report_run(report("notes", f"r-{d}", at(d.isoformat(), 12)))
        clock.set(at((d + timedelta(days=1)).isoformat(), 0, 5))
        svc.close_day(d)
    clock.set(at("2026-11-22", 10))
    svc.decide("notes", SUNDAY, Decision.PROMOTE, by="ops")
    clock.set(at("2026-11-23", 0, 10))
    assert svc.close_sunday(SUNDAY).promoted == ["notes"]
    clock.set(at("2026-11-23", 9))
    svc.report_run(report("notes", "r-monday", at("2026-11-23", 9)))
    assert svc.state("notes").tier == Tier.C
    clock.set(at("2026-11-23", 10))
    result = svc.report_run(report("notes", "r-late", at("2026-11-21", 18), failed_gate="schema"))
    assert result.state.tier == Tier.A
    changes = [
        (e.data["from"], e.data["to"], e.data["cause"])
        for e in svc.history("notes")
        if e.kind.value in ("promoted", "demoted")
    ]
    assert changes == [
        ("A", "B", "forced"),
        ("B", "C", "promotion"),
        ("C", "B", "reversal"),
        ("B", "A", "gate"),
    ]
    with engine.connect() as conn:
        alerts = conn.execute(
            sa.select(T_OUTBOX.c.payload).where(T_OUTBOX.c.kind == "demotion_alert")
        ).scalars()
        assert sorted((a["from"], a["to"]) for a in alerts) == [("B", "A"), ("C", "B")]
        assert chain_standing(conn, "notes")[0] == Tier.A
    assert svc.verify().ok
    assert svc.rebuild().differences == []
