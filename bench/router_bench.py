"""Router overhead per call against a bare httpx POST to the same local provider, in one run.

    .venv/bin/python bench/router_bench.py [--quick] [--calls N] [--postgres SERVER_URL]
        [--with-settlement] [--prefill ROWS]

Starts the local provider in its own process, binds one behavior on a fresh SQLite ledger (or
the PostgreSQL given), then alternates a bare POST and a `Router.complete` of the same request
so both see the same server, network stack and validation cost. The router's overhead is its
per-call time minus the bare POST's: key and preset lookup, guardrails, the budget reservation
and its settlement in the database, secret resolution and response parsing. On PostgreSQL an
answered call's settlement is written after the call returns; it is drained between calls,
outside the timed windows, unless `--with-settlement` times it as part of the call.

`--prefill ROWS` writes that many settled calls into the key's current period first, as a busy
key has by the end of a day (or a month): what a budget check costs as the period fills up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from cleanday.budget import SpendStore
from cleanday.config import Settings
from cleanday.db import make_engine, migrate
from cleanday.domain import Tier
from cleanday.presets import PresetStore
from cleanday.router import Router, RouterConfig
from cleanday.secrets import SecretResolver
from cleanday.workorder import WorkOrder

TARGET_P50_MS = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_provider(port: int) -> subprocess.Popen[bytes]:
    code = (
        "from cleanday.localprovider import run_local_provider; "
        f"run_local_provider('127.0.0.1', {port})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("local provider did not start")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _prefill(engine: Engine, behavior: str, rows: int) -> None:
    """`rows` settled calls of `behavior` earlier in its current (month) period."""
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max((now - start).total_seconds() - 60, 1.0)
    values = [
        {"b": behavior, "at": now - timedelta(seconds=60 + span * i / max(rows, 1))}
        for i in range(rows)
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into key_spend (behavior, at, transport, model, estimate_usd, cost_usd, "
                "status, tokens_in, tokens_out) values (:b, :at, 'openrouter', 'bench/model', "
                "0.0001, 0.0001, 'settled', 10, 5)"
            ),
            values,
        )


async def _run(
    calls: int,
    database_url: str | None,
    data_dir: Path,
    url: str,
    *,
    with_settlement: bool,
    prefill: int = 0,
) -> None:
    engine = make_engine(database_url or f"sqlite:///{data_dir / 'ledger.db'}")
    migrate(engine)
    settings = Settings.model_validate(
        {"OPENROUTER_BASE_URL": url + "/v1", "CLEANDAY_DATA_DIR": str(data_dir)}
    )
    env = {"BENCH_KEY": "bench-fake-key-0000"}
    router = Router(
        settings,
        SpendStore(engine),
        PresetStore(engine),
        SecretResolver(env=env),
        config=RouterConfig(default_estimate_usd=0.0001),
    )
    name = f"bench_{os.getpid()}"
    router.bind_local(
        WorkOrder.model_validate(
            {
                "name": name,
                "description": "router benchmark",
                "trigger": {"type": "interval", "every_seconds": 60},
                "reports": "nothing",
                "key": {"ref": "env:BENCH_KEY", "cap_usd": 1_000_000.0},
                "preset": {
                    "name": name,
                    "system_prompt": "Be brief.",
                    "model": "bench/model",
                    "parameters": {"temperature": 0.2, "max_tokens": 64},
                },
                "transports": {"order": ["openrouter"]},
                "entry": "behaviors.x:run",
            }
        )
    )
    if prefill:
        _prefill(engine, name, prefill)
    messages = [{"role": "user", "content": "ping"}]
    bare_body = {
        "model": "bench/model",
        "messages": [{"role": "system", "content": "Be brief."}, *messages],
        "user": name,
        "temperature": 0.2,
        "max_tokens": 64,
    }
    client = router.client
    bare: list[float] = []
    routed: list[float] = []
    bare_cpu: list[float] = []
    routed_cpu: list[float] = []
    for i in range(calls + 10):
        c0, t0 = time.thread_time(), time.perf_counter()
        resp = await client.post(
            url + "/v1/chat/completions",
            json=bare_body,
            headers={"Authorization": "Bearer bench-fake-key-0000"},
        )
        resp.json()
        c1, t1 = time.thread_time(), time.perf_counter()
        await router.complete(name, Tier.C, messages)
        if with_settlement:
            await router.drain()
        c2, t2 = time.thread_time(), time.perf_counter()
        # the settlement of an answered call is not waited for by its caller (PostgreSQL); let
        # it land outside both timed windows so it does not slow the next bare POST either
        await router.drain()
        if i >= 10:  # warm-up: connection pool, validators, statement caches
            bare.append((t1 - t0) * 1000)
            routed.append((t2 - t1) * 1000)
            bare_cpu.append((c1 - c0) * 1000)
            routed_cpu.append((c2 - c1) * 1000)
    overhead = [r - b for r, b in zip(routed, bare, strict=True)]
    p50 = _pct(routed, 0.5) - _pct(bare, 0.5)
    p99 = _pct(routed, 0.99) - _pct(bare, 0.99)
    cpu50 = _pct(routed_cpu, 0.5) - _pct(bare_cpu, 0.5)
    cpu99 = _pct(routed_cpu, 0.99) - _pct(bare_cpu, 0.99)
    backend = engine.dialect.name
    load = os.getloadavg()[0]
    timed = "call + its settlement" if with_settlement else "call"
    print(
        f"router_bench: {calls} calls, ledger on {backend}, load average {load:.2f}, timed: {timed}"
        f", {prefill} spend rows already in the period"
    )
    print(f"  bare httpx POST  p50 {_pct(bare, 0.5):7.3f} ms   p99 {_pct(bare, 0.99):7.3f} ms")
    print(f"  Router.complete  p50 {_pct(routed, 0.5):7.3f} ms   p99 {_pct(routed, 0.99):7.3f} ms")
    print(f"  overhead (wall)  p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")
    print(f"  paired overhead  median {statistics.median(overhead):7.3f} ms")
    # the calling thread's CPU time: what the router itself costs, without the waits a busy
    # machine adds (on PostgreSQL the transactions run in worker threads and are not counted)
    print(f"  overhead (CPU)   p50 {cpu50:7.3f} ms   p99 {cpu99:7.3f} ms")
    verdict = "meets" if p50 < TARGET_P50_MS else "MISSES"
    print(f"  target p50 overhead < {TARGET_P50_MS} ms (wall): {verdict}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 calls instead of 1000")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument(
        "--with-settlement",
        action="store_true",
        help="time each call until its settlement is written (PostgreSQL settles after the "
        "call returns; by default that happens outside both timed windows)",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        metavar="ROWS",
        help="settled calls already in the key's period before timing (a busy day: 6000)",
    )
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        default=None,
        help="run the ledger on a fresh, uniquely named database on this PostgreSQL server "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres); default: SQLite",
    )
    args = parser.parse_args()
    calls = args.calls or (100 if args.quick else 1000)
    port = _free_port()
    provider = _start_provider(port)
    try:
        with tempfile.TemporaryDirectory() as tmp, _database(args.postgres) as url:
            asyncio.run(
                _run(
                    calls,
                    url,
                    Path(tmp),
                    f"http://127.0.0.1:{port}",
                    with_settlement=args.with_settlement,
                    prefill=args.prefill,
                )
            )
    finally:
        provider.terminate()
        provider.wait(timeout=10)


@contextmanager
def _database(server: str | None) -> Iterator[str | None]:
    """None for SQLite; else a database of its own on the server, dropped afterwards."""
    if server is None:
        yield None
        return
    import psycopg
    from sqlalchemy.engine.url import make_url

    name = f"cleanday_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(server).set(drivername="postgresql", database="postgres")
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
