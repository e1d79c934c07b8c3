"""Permit benchmark: act permits per second at tier C (the tier decides) against tier A (an
approved proposal's entry decides), in one run, on SQLite.

Every grant is a chained `permit` entry appended under the ledger's write lock, at every tier;
this measures what that lock costs the tier that needs no approval, against the tier that reads
an item and its approval as well. Each round asks for `--permits` new permits per tier, tiers
alternated (C first in odd rounds, A first in even ones), from `--threads` threads at once;
then a retry of each (the same permit back, nothing appended).

    python bench/permit_bench.py                  # 5 rounds x 500 permits per tier, 4 threads
    python bench/permit_bench.py --quick          # 3 rounds x 100
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cleanday.db import make_engine, migrate
from cleanday.domain import Tier
from cleanday.ledger import GateIn, LedgerService, RunReport
from ledger_bench import START, Clock, register_bulk

BEHAVIORS = 8  # per tier: the permits of one round are spread over them


def setup(service: LedgerService, clock: Clock, names_c: list[str], names_a: list[str]) -> None:
    """Behaviors at C by a forced tier; at A, each with one proposal approved."""
    for name in names_c:
        service.override(name, "bench: starts at C", kind="forced_tier", tier=Tier.C)
    for name in names_a:
        finished = clock.now - timedelta(minutes=5)
        service.report_run(
            RunReport(
                behavior=name,
                run_id=f"{name}-proposal",
                workflow_id=f"wf-{name}-proposal",
                started_at=finished - timedelta(seconds=30),
                finished_at=finished,
                outcome="proposed",
                gates=[GateIn(name="budget", passed=True)],
                cost_usd=0.01,
            )
        )
        service.approve(name, [f"{name}-proposal"], by="bench")


def grant(
    service: LedgerService, names: list[str], item: bool, run_ids: list[str], threads: int
) -> float:
    """Seconds to ask for one permit per run ID, spread over `names`, from `threads` threads."""

    def one(i_run: tuple[int, str]) -> None:
        i, run_id = i_run
        name = names[i % len(names)]
        permit = service.request_permit(name, run_id, item_id=f"{name}-proposal" if item else None)
        assert permit.granted

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, enumerate(run_ids)))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds x 100 permits")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--permits", type=int, default=None)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    n = args.permits or (100 if args.quick else 500)
    names_c = [f"c{i:02d}" for i in range(BEHAVIORS)]
    names_a = [f"a{i:02d}" for i in range(BEHAVIORS)]
    rates: dict[str, list[float]] = {"C": [], "A": [], "C retry": [], "A retry": []}
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/ledger.db")
        migrate(engine)
        registered = datetime(START.year, START.month, START.day, 9, tzinfo=UTC)
        register_bulk(engine, names_c + names_a, registered)
        clock = Clock(registered + timedelta(hours=3))
        service = LedgerService(engine, clock=clock)
        setup(service, clock, names_c, names_a)
        for r in range(rounds):
            order = [("C", names_c, False), ("A", names_a, True)]
            for label, names, item in order if r % 2 == 0 else order[::-1]:
                run_ids = [f"{label}-{r}-{i}" for i in range(n)]
                took = grant(service, names, item, run_ids, args.threads)
                rates[label].append(n / took)
                took = grant(service, names, item, run_ids, args.threads)
                rates[f"{label} retry"].append(n / took)
        engine.dispose()
    print(f"{rounds} rounds x {n} permits per tier, {args.threads} threads, SQLite")
    for label, rs in rates.items():
        print(
            f"tier {label:<8} permits/s  min {min(rs):7.0f}  median {statistics.median(rs):7.0f}"
            f"  max {max(rs):7.0f}"
        )
    ratios = [c / a for c, a in zip(rates["C"], rates["A"], strict=True)]
    print(
        f"ratio C/A per round (new permits): min {min(ratios):.2f}  "
        f"median {statistics.median(ratios):.2f}  max {max(ratios):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
