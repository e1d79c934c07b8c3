"""Run-report ingest through the HTTP API on loopback: reports per second (target >= 1,000/s).

Starts the ledger service with uvicorn in a subprocess on a free loopback port over a fresh
SQLite ledger, registers some behaviors, then POSTs run reports concurrently with
httpx.AsyncClient and prints reports/second.

    .venv/bin/python bench/ingest_bench.py            # 20,000 reports
    .venv/bin/python bench/ingest_bench.py --quick    # 2,000 reports
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

TOKEN = "bench-token-3f9a"  # a fake operator token for a throwaway server
HERE = Path(__file__).resolve().parent


async def bench_step(ctx: Any) -> Any:
    """The registered behaviors' entry point; the benchmark never runs it."""
    raise NotImplementedError("ingest benchmark behaviors are never run")


class NullLedger:
    """A ledger that stores nothing: `--http-only` measures the HTTP layer's own ceiling."""

    def __init__(self) -> None:
        from cleanday.domain import Policy

        self.policy = Policy()
        self.clock = lambda: datetime.now(UTC)

    def register_work_order(self, wo: Any, source: str, text: str | None = None) -> Any:
        from cleanday.ledger import RegistrationResult

        return RegistrationResult(
            name=wo.name, status="new", version=1, preset_version=1, tier="A", message="null"
        )

    def list_behaviors(self) -> list[Any]:
        return []

    def report_run(self, report: Any) -> Any:
        from cleanday.ledger import BehaviorRow, ReportResult

        row = BehaviorRow(
            name=report.behavior, tier="A", status="active", clean_days=0, candidate=False,
            last_gate_failure=None,
        )  # fmt: skip
        return ReportResult(
            behavior=report.behavior, run_id=report.run_id, recorded=True, message="", state=row
        )


def null_app() -> Any:
    """uvicorn factory for `--http-only`: the real app over NullLedger."""
    from cleanday.config import Settings
    from cleanday.service.app import create_app

    return create_app(Settings(), NullLedger())  # type: ignore[arg-type]


def work_order(i: int) -> str:
    return f"""\
name: bench_{i:04d}
description: ingest benchmark behavior {i}
trigger: {{type: interval, every_seconds: 3600}}
reports: nothing; it only exists to receive run reports
key: {{ref: "env:BENCH_KEY_{i:04d}", cap_usd: 10}}
preset: {{name: bench_{i:04d}, model: local/echo}}
entry: "ingest_bench:bench_step"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    data_dir: Path, port: int, workers: int, log: Any, factory: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLEANDAY_DATA_DIR": str(data_dir),
        "CLEANDAY_TOKEN": TOKEN,
        "CLEANDAY_SCHEDULER": "false",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("DATABASE_URL", None)  # this benchmark measures the SQLite default
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log", "--workers", str(workers), "--timeout-keep-alive", "60",
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with code {proc.returncode} before answering")
        try:
            if (await client.get("/api/v1/behaviors")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the service did not answer within 30 s")


def report(i: int, behaviors: int) -> dict[str, Any]:
    # a run reports as it finishes, so finish times follow report order (a report older than
    # what the ledger has folded for that behavior would force a refold of its history)
    finished = datetime.now(UTC)
    return {
        "behavior": f"bench_{i % behaviors:04d}",
        "run_id": f"bench-run-{i:08d}",
        "workflow_id": f"bench-wf-{i:08d}",
        "started_at": (finished - timedelta(seconds=3)).isoformat(),
        "finished_at": finished.isoformat(),
        "outcome": "succeeded",
        "gates": [
            {"name": "budget", "passed": True, "reason": ""},
            {"name": "schema", "passed": True, "reason": ""},
        ],
        "anomalies": [],
        "cost_usd": 0.0012,
        "tokens_in": 120,
        "tokens_out": 80,
        "model": "local/echo",
        "transport": "local",
        "latency_ms": 850.0,
        "output_size": 512,
    }


async def post_reports(
    client: httpx.AsyncClient, n: int, behaviors: int, concurrency: int
) -> dict[int, int]:
    counts: dict[int, int] = {}
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:  # the shared iterator hands each index to exactly one worker
            body = report(i, behaviors)
            try:
                r = await client.post("/api/v1/runs", json=body)
            except httpx.TransportError as exc:
                # reports are idempotent by run_id, so a worker's client resends after a dropped
                # connection; the benchmark does the same and counts it
                counts[-1] = counts.get(-1, 0) + 1
                print(f"report {i}: {type(exc).__name__}, resent", file=sys.stderr)
                r = await client.post("/api/v1/runs", json=body)
            counts[r.status_code] = counts.get(r.status_code, 0) + 1
            if r.status_code not in (200, 201):
                raise SystemExit(f"report {i} refused: {r.status_code} {r.text}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cleanday-ingest-") as tmp:
        log_path = Path(tmp) / "server.log"
        log = log_path.open("wb")
        factory = "ingest_bench:null_app" if args.http_only else "cleanday.service.app:app_from_env"
        proc = start_server(Path(tmp), port, args.workers, log, factory)
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=60
            ) as client:
                await wait_ready(client, proc)
                for i in range(args.behaviors):
                    r = await client.post("/api/v1/behaviors", json={"work_order": work_order(i)})
                    if r.status_code not in (200, 201):
                        raise SystemExit(f"registration refused: {r.status_code} {r.text}")
                started = time.perf_counter()
                counts = await post_reports(client, args.reports, args.behaviors, args.concurrency)
                elapsed = time.perf_counter() - started
                # idempotency spot check: a repeat of an already reported run is a 200
                again = await client.post("/api/v1/runs", json=report(0, args.behaviors))
        except BaseException:
            proc.terminate()
            proc.wait(timeout=10)
            log.close()
            print("service log (tail):", file=sys.stderr)
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    resent = counts.pop(-1, 0)
    rate = args.reports / elapsed
    backend = "no ledger (HTTP layer only)" if args.http_only else "SQLite"
    print(
        f"ingest: {args.reports} run reports to {args.behaviors} behaviors, concurrency "
        f"{args.concurrency}, {args.workers} server worker(s), {backend}: {elapsed:.2f} s, "
        f"{rate:,.0f} reports/s (target >= 1,000/s); statuses {counts}, resent {resent}; "
        f"repeat -> {again.status_code}"
    )
    if args.http_only:
        return
    if counts.get(201, 0) + counts.get(200, 0) != args.reports or again.status_code != 200:
        raise SystemExit("ingest benchmark: the ledger did not count every report exactly once")


def in_process(n: int, behaviors: int) -> float:
    """Reports/second calling LedgerService.report_run directly: the ledger's own cost, with
    HTTP, JSON and the client taken out (one SQLite transaction per report)."""
    from cleanday.config import Settings
    from cleanday.ledger import RunReport
    from cleanday.service.app import build_service
    from cleanday.workorder import parse_work_order

    sys.path.insert(0, str(HERE))  # for the behaviors' entry point
    with tempfile.TemporaryDirectory(prefix="cleanday-ingest-") as tmp:
        service = build_service(Settings(CLEANDAY_DATA_DIR=tmp))
        for i in range(behaviors):
            service.register_work_order(parse_work_order(work_order(i), "bench"), "bench")
        started = time.perf_counter()
        for i in range(n):
            service.report_run(RunReport.model_validate(report(i, behaviors)))
        elapsed = time.perf_counter() - started
        service.engine.dispose()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--behaviors", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--quick", action="store_true", help="2,000 reports to 10 behaviors")
    parser.add_argument(
        "--http-only", action="store_true", help="the same requests to a ledger that stores nothing"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="also time report_run without HTTP"
    )
    args = parser.parse_args()
    if args.quick:
        args.reports, args.behaviors = 2_000, 10
    asyncio.run(run(args))
    if args.in_process:
        n = min(args.reports, 1_000)
        rate = in_process(n, args.behaviors)
        print(f"in process: {n} LedgerService.report_run calls, SQLite: {rate:,.0f} reports/s")


if __name__ == "__main__":
    main()
