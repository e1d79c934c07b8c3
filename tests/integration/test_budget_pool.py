"""The budget path's connections are bounded: four worker processes making 25 concurrent calls
each stay within their pools, none gets a connection error, and the spend is exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from cleanday.budget import SpendStore

PROCESSES, CALLS, POOL = 4, 25, 5
CAP, COST = 0.08, 0.001  # room for 80 of the 100 calls

# a worker process builds its router's budget from its settings (DATABASE_URL,
# CLEANDAY_BUDGET_POOL_SIZE), as `cleanday worker` does
_WORKER = """
import asyncio, json, os, sys, time
from cleanday.config import Settings
from cleanday.errors import BudgetExceeded
from cleanday.router import Router

calls, go = int(sys.argv[1]), sys.argv[2]

async def main() -> None:
    store = Router.from_settings(Settings()).spend

    async def one() -> str:
        try:
            reservation = await store.reserve_async("pooled", 0.001)
        except BudgetExceeded:
            return "over"
        await asyncio.sleep(0.05)  # the model call
        await store.settle_async(reservation, 0.001)
        return "ok"

    while not os.path.exists(go):  # every process starts its burst at once
        time.sleep(0.005)
    results = await asyncio.gather(*[one() for _ in range(calls)], return_exceptions=True)
    print(json.dumps([r if isinstance(r, str) else f"{type(r).__name__}: {r}" for r in results]))

asyncio.run(main())
"""


def _bind(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values ('pooled', 'env:KEY_POOLED', :cap, "
                "'month', '[]', '{}', :now, :now)"
            ),
            {"cap": CAP, "now": datetime.now(UTC)},
        )


def test_four_processes_of_25_concurrent_calls_stay_in_their_pools_with_exact_spend(
    engine: Engine, tmp_path: Path
) -> None:
    """Today one process opened a connection per concurrent call (86 for 90), and four
    processes ran into PostgreSQL's "too many clients"."""
    _bind(engine)
    url = engine.url.render_as_string(hide_password=False)
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME")}
    env |= {
        "DATABASE_URL": url,
        "CLEANDAY_BUDGET_POOL_SIZE": str(POOL),
        "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(CALLS), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(PROCESSES)
    ]
    peak = 0
    done = threading.Event()
    postgres = engine.dialect.name == "postgresql"

    def watch() -> None:
        nonlocal peak
        with engine.connect() as conn:
            while not done.is_set():
                n = conn.execute(
                    text("select count(*) from pg_stat_activity where datname = current_database()")
                ).scalar_one()
                peak = max(peak, int(n) - 1)  # not this watcher's own
                conn.commit()  # pg_stat_activity is a snapshot per transaction
                time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    if postgres:
        watcher.start()
    time.sleep(1.0)  # the workers have imported cleanday and wait for the signal
    go.touch()
    outputs = [w.communicate(timeout=120) for w in workers]
    done.set()
    if postgres:
        watcher.join(timeout=5)
    results: list[str] = []
    for (out, err), w in zip(outputs, workers, strict=True):
        assert w.returncode == 0, err[-2000:]
        results += json.loads(out.strip().splitlines()[-1])
    assert sorted(set(results)) == ["ok", "over"], [r for r in results if r not in ("ok", "over")]
    assert results.count("ok") == round(CAP / COST)
    assert SpendStore(engine).spend("pooled") == pytest.approx(CAP, abs=1e-9)
    if postgres:
        assert 0 < peak <= PROCESSES * POOL, f"{peak} budget connections open at once"
