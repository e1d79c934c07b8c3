"""Pane of Glass benchmark: the first page of the overview with 10,000 behaviors, against the JSON
list endpoint (`GET /api/v1/behaviors`, every behavior) in the same run, on SQLite.

The ledger is bulk-loaded as `bench/ledger_bench.py` loads it (behaviors, then days of run
reports folded and closed), with a few hundred proposals waiting and spend on every key, so the
page reads each of its tables. Both requests go through the whole app in process (ASGI: routing,
dependencies, the database, rendering), alternated, after a warm-up.

    python bench/pane_bench.py                 # 10,000 behaviors x 3 days x 3 runs
    python bench/pane_bench.py --quick         # 1,000 behaviors
    python bench/pane_bench.py --unclosed      # a day later, that day's close not yet run:
                                               # every row is viewed again on read
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cleanday.config import Settings
from cleanday.db import make_engine, migrate, write_connection
from cleanday.ledger import LedgerService
from cleanday.models import T_PENDING
from cleanday.router.tables import KeySpend, RoutingBinding
from cleanday.service import create_app
from ledger_bench import START, Clock, load_day, register_bulk

TARGET_MS = 200.0


def seed(engine: sa.Engine, names: list[str], days: int, unclosed: bool = False) -> LedgerService:
    registered = datetime(START.year, START.month, START.day, tzinfo=UTC) - timedelta(hours=4)
    clock = Clock(registered)
    register_bulk(engine, names, registered)
    service = LedgerService(engine, clock=clock)
    rng = random.Random(11)
    for i in range(days):
        d = START + timedelta(days=i)
        load_day(engine, names, d, 3, rng)
        clock.now = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1, minutes=1)
        service.close_day(d)
    if unclosed:  # the next day has ended too, and nothing has closed it (an outage)
        clock.now += timedelta(days=1)
    now = clock.now
    bindings = [
        {"behavior": n, "key_ref": f"env:BENCH_KEY_{n.upper()}", "cap_usd": 10.0,
         "cadence": "month", "transports": [], "guardrails": {}, "bound_at": now,
         "updated_at": now}
        for n in names
    ]  # fmt: skip
    spend = [
        {"behavior": n, "at": now - timedelta(hours=1), "run_id": None, "transport": "local",
         "model": "local/echo", "estimate_usd": 0.01, "cost_usd": 0.008, "status": "settled",
         "tokens_in": 100, "tokens_out": 50, "settled_at": now}
        for n in names
    ]  # fmt: skip
    pending = [
        {"item_id": f"{n}-p", "behavior": n, "run_id": f"{n}-p", "kind": "proposal",
         "status": "pending", "payload": {"summary": "1 note drafted"}, "created_at": now,
         "expires_at": None, "decided_at": None, "decided_by": None}
        for n in names[::25]
    ]  # fmt: skip
    with write_connection(engine) as conn:
        conn.execute(sa.insert(RoutingBinding.__table__), bindings)  # type: ignore[attr-defined]
        conn.execute(sa.insert(KeySpend.__table__), spend)  # type: ignore[attr-defined]
        conn.execute(sa.insert(T_PENDING), pending)
    return service


async def measure(service: LedgerService, rounds: int) -> dict[str, list[float]]:
    app = create_app(Settings(CLEANDAY_TOKEN="bench", CLEANDAY_SCHEDULER=False), service)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    times: dict[str, list[float]] = {"pane /": [], "GET /api/v1/behaviors": []}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for path in ("/", "/api/v1/behaviors"):  # warm-up: imports, templates, caches
            (await client.get(path)).raise_for_status()
        for _ in range(rounds):
            for label, path in (("pane /", "/"), ("GET /api/v1/behaviors", "/api/v1/behaviors")):
                t0 = time.perf_counter()
                r = await client.get(path)
                times[label].append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
        page = (await client.get("/")).text
    assert page.count('<tr class="row-') == 50, "the first page shows 50 behaviors"
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 behaviors")
    parser.add_argument("--behaviors", type=int, default=None)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--unclosed", action="store_true", help="read a day later, before that day's close"
    )
    args = parser.parse_args(argv)
    n = args.behaviors or (1_000 if args.quick else 10_000)
    names = [f"b{i:05d}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/ledger.db")
        migrate(engine)
        t0 = time.perf_counter()
        service = seed(engine, names, args.days, args.unclosed)
        took = time.perf_counter() - t0
        print(f"loaded {n:,} behaviors x {args.days} days x 3 runs in {took:.0f} s")
        times = asyncio.run(measure(service, args.rounds))
    pane, listing = times["pane /"], times["GET /api/v1/behaviors"]
    for label, ts in times.items():
        print(
            f"{label:<24} min {min(ts):7.1f} ms  median {statistics.median(ts):7.1f} ms  "
            f"max {max(ts):7.1f} ms  ({len(ts)} requests)"
        )
    ratio = statistics.median(pane) / statistics.median(listing)
    verdict = "meets" if statistics.median(pane) < TARGET_MS else "MISSES"
    print(
        f"first page / JSON list of all {n:,}: ratio {ratio:.2f} (medians); "
        f"first page median {statistics.median(pane):.1f} ms against the {TARGET_MS:.0f} ms "
        f"target — {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
