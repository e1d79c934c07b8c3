"""Ledger benchmark: day close at 30 and 90 days of history, the Sunday candidates query and the
`ledger --json` list, on SQLite or PostgreSQL.

History is bulk-loaded straight into the hash chain (no HTTP, no per-run fold): each day's run
reports are appended to the chain, then that day is closed with `LedgerService.close_day`,
which folds them — the same work the scheduler's day close does after a day of ingest.

    python bench/ledger_bench.py --quick                     # 300 behaviors x 90 days, SQLite
    python bench/ledger_bench.py --backend postgresql --quick
    python bench/ledger_bench.py                             # 10,000 x 90 x 3 = 2.7M runs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url

from cleanday import chain, ladder
from cleanday.bulk import raw_insert, raw_update
from cleanday.chain import NewEntry
from cleanday.db import is_sqlite, make_engine, migrate, write_connection
from cleanday.domain import EntryKind, Policy
from cleanday.ledger import LedgerService, reads
from cleanday.models import T_BEHAVIORS, T_ENTRIES, T_RUNS, T_STATES
from cleanday.registration import content_hash, preset_hash
from cleanday.workorder import WorkOrder

START = date(2026, 8, 3)  # a Monday; registration happens the evening before


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _work_order(name: str) -> WorkOrder:
    return WorkOrder.model_validate(
        {
            "name": name,
            "description": "benchmark behavior",
            "trigger": {"type": "interval", "every_seconds": 28800},
            "reports": "what it did",
            "key": {"ref": f"env:BENCH_KEY_{name.upper()}", "cap_usd": 10},
            "preset": {"name": "bench", "model": "local/echo"},
            "entry": "cleanday.cli:main",
        }
    )


def register_bulk(engine: Engine, names: list[str], now: datetime) -> None:
    """Insert behaviors, their registered entries and folded state rows in one transaction."""
    policy = Policy()
    with write_connection(engine) as conn:
        head = chain.lock_head(conn, now)
        rows, states, entries = [], [], []
        for name in names:
            wo = _work_order(name)
            content = wo.model_dump(mode="json")
            rows.append(
                {
                    "name": name,
                    "version": 1,
                    "work_order": content,
                    "work_order_text": None,
                    "content_hash": content_hash(wo),
                    "preset_hash": preset_hash(wo),
                    "preset_version": 1,
                    "key_ref": wo.key.ref,
                    "idle_days": "skip",
                    "source_path": "bench",
                    "registered_at": now,
                    "updated_at": now,
                    "status_changed_at": now,
                }
            )
            entries.append(
                NewEntry(name, EntryKind.REGISTERED.value, now, "registered:v1", {"version": 1})
            )
        conn.execute(sa.insert(T_BEHAVIORS), rows)
        head, appended = chain.append(conn, head, entries, now)
        for name, row in zip(names, appended, strict=True):
            acc = ladder.apply(
                ladder.initial(name),
                chain_entry(row),
                policy,
            )
            st = ladder.view(acc, policy, now)
            states.append(
                {
                    "behavior": name,
                    "tier": st.tier.value,
                    "status": st.status.value,
                    "clean_days": 0,
                    "candidate": False,
                    "accumulator": acc.to_json(),
                    "last_seq": row["seq"],
                    "last_change_at": None,
                    "updated_at": now,
                }
            )
        conn.execute(sa.insert(T_STATES), states)
        conn.execute(sa.text("UPDATE chain_head SET folded_seq = :s WHERE id = 1"), {"s": head.seq})


def chain_entry(row: dict[str, Any]) -> Any:
    from cleanday.domain import Entry

    data = row["data"]
    if isinstance(data, str):  # `chain.link` rows carry the data as its JSON text
        data = json.loads(data)
    return Entry(row["behavior"], EntryKind(row["kind"]), row["at"], row["key"], data)


def load_day(
    engine: Engine,
    names: list[str],
    d: date,
    runs_per_day: int,
    rng: random.Random,
    fold: bool = True,
) -> int:
    """Append one day of run reports (a few with failed gates or anomalies) to the chain."""
    now = datetime(d.year, d.month, d.day, 23, 59, tzinfo=UTC)
    entries: list[NewEntry] = []
    runs: list[dict[str, Any]] = []
    for name in names:
        for k in range(runs_per_day):
            finished = datetime(d.year, d.month, d.day, 6 + 6 * k, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(3600)
            )
            run_id = f"{name}-{d.isoformat()}-{k}"
            failed = rng.random() < 0.002
            anomalous = rng.random() < 0.002
            cost = round(rng.uniform(0.001, 0.02), 5)
            data = {
                "run_id": run_id,
                "workflow_id": f"wf-{run_id}",
                "started_at": (finished - timedelta(seconds=20)).isoformat(),
                "outcome": "failed" if failed else "succeeded",
                "gates": [
                    {"name": "budget", "passed": True, "reason": ""},
                    {"name": "schema", "passed": not failed, "reason": "tag outside list"},
                ],
                "anomalies": [{"name": "cost", "detail": "3x median"}] if anomalous else [],
                "cost_usd": cost,
            }
            entries.append(
                NewEntry(name, EntryKind.RUN_REPORTED.value, finished, f"run:{run_id}", data)
            )
            runs.append(
                {
                    "run_id": run_id,
                    "workflow_id": f"wf-{run_id}",
                    "behavior": name,
                    "started_at": finished - timedelta(seconds=20),
                    "finished_at": finished,
                    "outcome": data["outcome"],
                    "cost_usd": cost,
                    "tokens_in": 100,
                    "tokens_out": 50,
                    "model": "local/echo",
                    "transport": "local",
                    "latency_ms": 20000.0,
                    "output_size": 1000,
                    "summary": None,
                    "reported_at": now,
                }
            )
    with write_connection(engine) as conn:
        head = chain.lock_head(conn, now)
        if is_sqlite(conn):
            _, rows = chain.append(conn, head, entries, now)
            raw_insert(conn, T_RUNS, runs)
        else:
            rows = append_by_copy(conn, head, entries, now)
            copy_insert(conn, T_RUNS, runs)
        if fold:
            fold_at_ingest(conn, rows)
    return len(entries)


def append_by_copy(
    conn: sa.Connection, head: chain.Head, entries: list[NewEntry], now: datetime
) -> list[dict[str, Any]]:
    """`chain.append` with the rows sent by COPY: the same seq, hashes and head update, but
    PostgreSQL takes a day of 30,000 entries in a second instead of half a minute of
    executemany, which is what makes the full 2.7M-run history loadable in minutes."""
    rows: list[dict[str, Any]] = []
    seq, prev = head.seq, head.hash
    for e in entries:
        seq += 1
        h = chain.entry_hash(prev, seq, e.behavior, e.kind, e.at, e.key, e.data)
        rows.append(
            {
                "seq": seq,
                "behavior": e.behavior,
                "kind": e.kind,
                "at": e.at,
                "key": e.key,
                "data": e.data,
                "prev_hash": prev,
                "hash": h,
                "recorded_at": now,
            }
        )
        prev = h
    if rows:
        copy_insert(conn, T_ENTRIES, rows)
        conn.execute(
            sa.text(
                "UPDATE chain_head SET seq = :seq, hash = :hash, updated_at = :at WHERE id = 1"
            ),
            {"seq": seq, "hash": prev, "at": now},
        )
    return rows


def copy_insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Bulk insert through PostgreSQL's COPY (JSON columns sent as text)."""
    if not rows:
        return
    cols = list(rows[0])
    json_cols = {c for c in cols if isinstance(table.c[c].type, sa.JSON)}
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(
                [json.dumps(r[c]) if c in json_cols and r[c] is not None else r[c] for c in cols]
            )


def fold_at_ingest(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Fold appended run reports into each behavior's accumulator, as `report_run` does for
    every run it records (the day close then only has to look at the day that ended)."""
    policy = Policy(timezone="UTC")
    by_behavior: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_behavior.setdefault(r["behavior"], []).append(r)
    states = {
        b: (acc, seq)
        for b, acc, seq in conn.execute(
            sa.select(T_STATES.c.behavior, T_STATES.c.accumulator, T_STATES.c.last_seq)
        ).all()
    }
    updates = []
    for b, rs in by_behavior.items():
        acc_json, last_seq = states[b]
        acc = ladder.Accumulator.from_json(acc_json)
        for r in sorted(rs, key=lambda r: ladder.fold_order(chain_entry(r))):
            acc = ladder.apply(acc, chain_entry(r), policy)
            last_seq = max(last_seq, r["seq"])
        updates.append({"behavior": b, "accumulator": acc.to_json(), "last_seq": last_seq})
    raw_update(conn, T_STATES, "behavior", updates)


def _create_pg_database(server: str, prefix: str = "cleanday_bench") -> tuple[str, str]:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_url(server).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False), name


def _drop_pg_database(server: str, name: str) -> None:
    import psycopg

    admin = make_url(server).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# issue 2's targets: (figure, limit in seconds or ratio, what is measured)
TARGET_CLOSE_S = 5.0
TARGET_RATIO = (0.8, 1.25)  # "about 1": history must not make the close dearer
TARGET_CANDIDATES_S = 0.5


def verdicts(f: dict[str, Any]) -> dict[str, bool]:
    lo, hi = TARGET_RATIO
    return {
        "day_close_at_30_days_under_5s": f["day_close_at_30_days_s"] < TARGET_CLOSE_S,
        "day_close_at_last_day_under_5s": f["day_close_at_last_day_s"] < TARGET_CLOSE_S,
        "day_close_ratio_about_1": lo <= f["day_close_ratio"] <= hi,
        "candidates_query_under_0_5s": f["candidates_query_s"] < TARGET_CANDIDATES_S,
    }


def report(f: dict[str, Any], days: int) -> str:
    """One block: each figure next to its target and whether it meets it."""
    v = f["targets"]

    def mark(ok: bool) -> str:
        return "MEETS" if ok else "MISSES"

    lines = [
        f"{f['backend']}: {f['behaviors']:,} behaviors x {f['days']} days x {f['runs_per_day']} "
        f"runs = {f['runs']:,} run reports (bulk load {f['bulk_load_seconds']} s; runs folded "
        f"at {f['fold_at']})",
        f"  {'figure':<38}{'measured':>12}  {'target':<16}verdict",
        f"  {'day close, 30 days of history':<38}{f['day_close_at_30_days_s']:>10.3f} s"
        f"  {'< 5 s':<16}{mark(v['day_close_at_30_days_under_5s'])}",
        f"  {f'day close, {days} days of history':<38}{f['day_close_at_last_day_s']:>10.3f} s"
        f"  {'< 5 s':<16}{mark(v['day_close_at_last_day_under_5s'])}",
        f"  {f'ratio day {days} / day 30':<38}{f['day_close_ratio']:>12.2f}"
        f"  {'~1 (0.8-1.25)':<16}{mark(v['day_close_ratio_about_1'])}",
        f"  {'  (CPU s at 30 / at last day)':<38}"
        f"{f['day_close_cpu_at_30_days_s']:>6.3f}/{f['day_close_cpu_at_last_day_s']:.3f}",
        f"  {'Sunday candidates query':<38}{f['candidates_query_s']:>10.4f} s"
        f"  {'< 0.5 s':<16}{mark(v['candidates_query_under_0_5s'])}"
        f"  ({f['candidates']:,} candidates)",
        f"  {'  (decisions part; repeated query)':<38}{f['candidates_decisions_part_s']:>10.4f} s"
        f"  {f['candidates_query_repeat_s']:.4f} s"
        + (
            f"; after VACUUM of behavior_states {f['candidates_query_after_vacuum_s']:.4f} s"
            if "candidates_query_after_vacuum_s" in f
            else ""
        ),
        f"  {'ledger --json (list + JSON)':<38}{f['ledger_json_s']:>10.4f} s"
        f"  {'(reported)':<16}{f['ledger_json_bytes']:,} bytes",
    ]
    if "state_table_mb" in f:
        lines.append(
            f"  {'behavior_states size (HOT updates)':<38}{f['state_table_mb']:>9.1f} MB"
            f"  ({f['state_hot_update_share'] or 0:.1%} of updates HOT)"
        )
    if "verify_s" in f:
        lines.append(f"  {'ledger verify':<38}{f['verify_s']:>10.1f} s  ok={f['verify_ok']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--behaviors", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs-per-day", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="300 behaviors (days unchanged)")
    ap.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLEANDAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="server to create a scratch database on (dropped afterwards)",
    )
    ap.add_argument(
        "--pg-db-prefix",
        default="cleanday_bench",
        help="name prefix of the scratch PostgreSQL database (a random suffix is added)",
    )
    ap.add_argument("--verify", action="store_true", help="also time `ledger verify`")
    ap.add_argument(
        "--fold-at-close",
        action="store_true",
        help="leave the day's runs unfolded so that the day close folds them too (as after a "
        "bulk import); by default they are folded at ingest, as report_run does",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.behaviors = min(args.behaviors, 300)
    if args.days < 31:
        ap.error("--days must be at least 31 to compare day 30 with the last day")

    tmp = None
    pg_name = None
    if args.backend == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="cleanday-bench-")
        url = f"sqlite:///{Path(tmp.name) / 'ledger.db'}"
    else:
        url, pg_name = _create_pg_database(args.postgres_url, args.pg_db_prefix)
    engine = make_engine(url)
    figures: dict[str, Any] = {
        "backend": args.backend,
        "behaviors": args.behaviors,
        "days": args.days,
        "runs_per_day": args.runs_per_day,
    }
    try:
        migrate(engine)
        rng = random.Random(42)
        names = [f"b{i:05d}" for i in range(args.behaviors)]
        registered = datetime.combine(START - timedelta(days=1), datetime.min.time(), UTC)
        register_bulk(engine, names, registered.replace(hour=18))
        clock = Clock(registered)
        svc = LedgerService(engine, Policy(timezone="UTC"), clock)
        close_times: dict[int, float] = {}
        close_cpu: dict[int, float] = {}
        load_total = 0.0
        runs = 0
        for i in range(args.days):
            d = START + timedelta(days=i)
            t = time.perf_counter()
            runs += load_day(engine, names, d, args.runs_per_day, rng, not args.fold_at_close)
            load_total += time.perf_counter() - t
            clock.now = datetime.combine(d + timedelta(days=1), datetime.min.time(), UTC)
            clock.now += timedelta(minutes=5)
            t, c = time.perf_counter(), time.process_time()
            result = svc.close_day(d)
            close_times[i + 1] = time.perf_counter() - t
            close_cpu[i + 1] = time.process_time() - c
            if (i + 1) % 10 == 0 or i + 1 in (1, 30, args.days):
                print(
                    f"day {i + 1:3d} {d}: close {close_times[i + 1]:.2f}s "
                    f"(cpu {close_cpu[i + 1]:.2f}s) "
                    f"({result.behaviors} behaviors, {result.entries_folded} entries folded, "
                    f"{len(result.demoted)} demoted); load so far {load_total:.1f}s",
                    file=sys.stderr,
                )

        def around(times: dict[int, float], day: int) -> float:
            window = [times[k] for k in range(day - 2, day + 1) if k in times]
            return statistics.median(window)

        at30, last = around(close_times, 30), around(close_times, args.days)
        figures.update(
            runs=runs,
            bulk_load_seconds=round(load_total, 1),
            day_close_at_30_days_s=round(at30, 3),
            day_close_at_last_day_s=round(last, 3),
            day_close_ratio=round(last / at30, 2),
            day_close_cpu_at_30_days_s=round(around(close_cpu, 30), 3),
            day_close_cpu_at_last_day_s=round(around(close_cpu, args.days), 3),
            fold_at="close" if args.fold_at_close else "ingest",
        )
        # the Sunday candidates query, as the review post and `cleanday review` run it
        last_day = START + timedelta(days=args.days - 1)
        sunday = last_day + timedelta(days=(6 - last_day.weekday()))
        t = time.perf_counter()
        cands = svc.candidates(sunday)
        figures["candidates_query_s"] = round(time.perf_counter() - t, 4)
        figures["candidates"] = len(cands)
        # where the time goes: the week's decisions (one indexed read) and the state rows
        with engine.connect() as conn:
            t = time.perf_counter()
            reads.decisions(svc, conn, sunday)
            figures["candidates_decisions_part_s"] = round(time.perf_counter() - t, 4)
        again = []
        for _ in range(3):
            t = time.perf_counter()
            svc.candidates(sunday)
            again.append(time.perf_counter() - t)
        figures["candidates_query_repeat_s"] = round(statistics.median(again), 4)
        if args.backend == "postgresql":
            # every run report rewrites its behavior's state row: how big the table is now,
            # and how many of those updates stayed on their page (HOT, see 0004)
            with engine.connect() as conn:
                size, hot, upd = conn.exec_driver_sql(
                    "SELECT pg_relation_size('behavior_states'), n_tup_hot_upd, n_tup_upd "
                    "FROM pg_stat_user_tables WHERE relname = 'behavior_states'"
                ).one()
            figures["state_table_mb"] = round(size / 2**20, 1)
            figures["state_hot_update_share"] = round(hot / upd, 3) if upd else None
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM (ANALYZE) behavior_states"
                )
            t = time.perf_counter()
            svc.candidates(sunday)
            figures["candidates_query_after_vacuum_s"] = round(time.perf_counter() - t, 4)
        t = time.perf_counter()
        rows = svc.list_behaviors()
        text = json.dumps([r.model_dump(mode="json") for r in rows])
        figures["ledger_json_s"] = round(time.perf_counter() - t, 4)
        figures["ledger_json_bytes"] = len(text)
        if args.verify:
            t = time.perf_counter()
            ok = svc.verify().ok
            figures["verify_s"] = round(time.perf_counter() - t, 1)
            figures["verify_ok"] = ok
    finally:
        engine.dispose()
        if pg_name:
            _drop_pg_database(args.postgres_url, pg_name)
        if tmp:
            tmp.cleanup()
    figures["targets"] = verdicts(figures)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(report(figures, args.days))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
