"""Run-report ingest through the HTTP API on loopback: reports per second (target >= 1,000/s).

One run measures, each against the target, each on a fresh uvicorn server (a subprocess on a
free loopback port, uvloop + httptools when installed) over a fresh SQLite ledger:

- single: one report per `POST /api/v1/runs`, many connections at once (the route
  group-commits reports that arrive together into one transaction);
- batch: `POST /api/v1/runs/batch` with `--batch` reports per request;
- http-only: the single-report requests to a ledger that stores nothing (the HTTP ceiling).

The client is a minimal HTTP/1.1 keep-alive client on asyncio streams (on uvloop when
installed), in `--clients` worker processes, with every request body serialized before the
clock starts, so that the client costs as little of the two cores as it can. Each line also
gives the server process's own CPU time per report, which moves less than the rate when other
work shares the machine. Each connection carries the reports of its own
behaviors, in finishing order, as a behavior's worker would.

    .venv/bin/python bench/ingest_bench.py            # 20,000 reports per path
    .venv/bin/python bench/ingest_bench.py --quick    # 2,000 reports per path
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
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

TARGET = 1_000.0  # reports per second, issue 2
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

    def report_runs(self, reports: list[Any]) -> list[Any]:
        return [self.report_run(r) for r in reports]

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
    data_dir: Path, port: int, workers: int, log: Any, factory: str, access_log: bool = False
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLEANDAY_DATA_DIR": str(data_dir),
        "CLEANDAY_TOKEN": TOKEN,
        "CLEANDAY_SCHEDULER": "false",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        # the behaviors' entry point lives here, outside the behaviors directory: allowed by name
        "CLEANDAY_STEP_MODULES": "ingest_bench",
    }
    env.pop("DATABASE_URL", None)  # this benchmark measures the SQLite default
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--timeout-keep-alive", "60",
    ]  # fmt: skip
    # uvicorn picks httptools and uvloop itself when they are installed (uvicorn[standard])
    cmd += ["--log-level", "info"] if access_log else ["--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def report(i: int, behaviors: int, base: datetime) -> dict[str, Any]:
    # a run reports as it finishes, so finish times follow report order (a report older than
    # what the ledger has folded for that behavior would force a refold of its history)
    finished = base + timedelta(microseconds=50 * i)
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


def http_request(path: str, body: Any) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def send_all(port: int, requests: list[bytes], batch: bool) -> tuple[dict[int, int], int]:
    """Send requests one after another on one keep-alive connection; statuses and how many
    reports the ledger said it recorded."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses: dict[int, int] = {}
    recorded = 0
    for req in requests:
        writer.write(req)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        statuses[status] = statuses.get(status, 0) + 1
        if status not in (200, 201):
            raise SystemExit(f"refused: {status} {body[:500]!r}")
        if batch:
            recorded += int(json.loads(body)["recorded"])
        elif status == 201:
            recorded += 1
    writer.close()
    return statuses, recorded


def client_process(port: int, conns: list[list[bytes]], batch: bool, go: Any, out: Any) -> None:
    """One client process: its connections, each sending its own requests; waits for `go`."""

    async def main() -> list[tuple[dict[int, int], int]]:
        return await asyncio.gather(*(send_all(port, reqs, batch) for reqs in conns))

    try:  # the client's own event loop costs less CPU on uvloop, as the server's does
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    go.wait()
    statuses: dict[int, int] = {}
    recorded = 0
    for st, rec in run(main()):
        recorded += rec
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
    out.put((statuses, recorded))


def plan(args: argparse.Namespace, batch: int, base: datetime) -> list[list[bytes]]:
    """Requests per connection: connection c carries the behaviors b with b % conns == c."""
    conns = args.batch_concurrency if batch else args.concurrency
    per_conn: list[list[int]] = [[] for _ in range(conns)]
    for i in range(args.reports):
        per_conn[(i % args.behaviors) % conns].append(i)
    out: list[list[bytes]] = []
    for idx in per_conn:
        if batch == 0:
            out.append([http_request("/api/v1/runs", report(i, args.behaviors, base)) for i in idx])
        else:
            out.append(
                [
                    http_request(
                        "/api/v1/runs/batch",
                        [report(i, args.behaviors, base) for i in idx[k : k + batch]],
                    )
                    for k in range(0, len(idx), batch)
                ]
            )
    return out


async def prepare(port: int, proc: subprocess.Popen[bytes], behaviors: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        await wait_ready(client, proc)
        for i in range(behaviors):
            r = await client.post("/api/v1/behaviors", json={"work_order": work_order(i)})
            if r.status_code not in (200, 201):
                raise SystemExit(f"registration refused: {r.status_code} {r.text}")


async def repeat_status(port: int, behaviors: int, base: datetime) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        r = await client.post("/api/v1/runs", json=report(0, behaviors, base))
        return r.status_code


def measure(args: argparse.Namespace, mode: str) -> float:
    """One path on a fresh server; prints its line and returns reports/second."""
    batch = args.batch if mode == "batch" else 0
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cleanday-ingest-") as tmp:
        log_path = Path(tmp) / "server.log"
        log = log_path.open("wb")
        factory = (
            "ingest_bench:null_app" if mode == "http-only" else "cleanday.service.app:app_from_env"
        )
        proc = start_server(Path(tmp), port, args.workers, log, factory, args.access_log)
        try:
            asyncio.run(prepare(port, proc, args.behaviors))
            base = datetime.now(UTC)
            conns = plan(args, batch, base)
            ctx = mp.get_context("fork")
            go, out = ctx.Event(), ctx.Queue()
            shares = [conns[k :: args.clients] for k in range(args.clients)]
            procs = [
                ctx.Process(target=client_process, args=(port, share, batch > 0, go, out))
                for share in shares
            ]
            for p in procs:
                p.start()
            time.sleep(0.5)  # let the client processes reach the starting line
            cpu_before = cpu_seconds(proc.pid)
            started = time.perf_counter()
            go.set()
            results = [out.get(timeout=600) for _ in procs]
            elapsed = time.perf_counter() - started
            cpu_after = cpu_seconds(proc.pid)
            for p in procs:
                p.join()
            again = asyncio.run(repeat_status(port, args.behaviors, base))
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
    statuses: dict[int, int] = {}
    recorded = 0
    for st, rec in results:
        recorded += rec
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
    rate = args.reports / elapsed
    # the server's own CPU per report: steadier than the rate on a shared machine
    cpu = (
        f", server CPU {(cpu_after - cpu_before) / args.reports * 1e6:,.0f} us/report"
        if cpu_before is not None and cpu_after is not None and args.workers == 1
        else ""  # with several workers the process measured is only their supervisor
    )
    verdict = "meets" if rate >= TARGET else "MISSES"
    what = {
        "single": f"single  POST /api/v1/runs, {args.concurrency} connections",
        "batch": f"batch   POST /api/v1/runs/batch, {args.batch} reports per request, "
        f"{args.batch_concurrency} connections",
        "http-only": f"http    POST /api/v1/runs to a ledger that stores nothing, "
        f"{args.concurrency} connections",
    }[mode]
    print(
        f"{what}: {args.reports} reports in {elapsed:.2f} s = {rate:,.0f} reports/s, "
        f"{verdict} the {TARGET:,.0f}/s target{cpu}; statuses {dict(sorted(statuses.items()))}, "
        f"repeat -> {again}",
        flush=True,
    )
    if mode != "http-only" and (recorded != args.reports or again != 200):
        raise SystemExit(
            f"ingest benchmark: the ledger recorded {recorded} of {args.reports} reports "
            f"(repeat -> {again}); every report must count exactly once"
        )
    return rate


def in_process(n: int, behaviors: int, batch: int) -> float:
    """Reports/second calling LedgerService directly: the ledger's own cost, with HTTP, JSON
    and the client taken out (report_run per report, or report_runs per `batch`)."""
    from cleanday.config import Settings
    from cleanday.ledger import RunReport
    from cleanday.registration import parse_work_order
    from cleanday.service.app import build_service

    sys.path.insert(0, str(HERE))  # for the behaviors' entry point
    with tempfile.TemporaryDirectory(prefix="cleanday-ingest-") as tmp:
        service = build_service(Settings(CLEANDAY_DATA_DIR=tmp))
        for i in range(behaviors):
            service.register_work_order(parse_work_order(work_order(i), "bench"), "bench")
        base = datetime.now(UTC)
        reports = [RunReport.model_validate(report(i, behaviors, base)) for i in range(n)]
        started = time.perf_counter()
        if batch:
            for k in range(0, n, batch):
                service.report_runs(reports[k : k + batch])
        else:
            for r in reports:
                service.report_run(r)
        elapsed = time.perf_counter() - started
        service.engine.dispose()
    return n / elapsed


def commit_cost_us(n: int = 300) -> float:
    """Microseconds per small write transaction of SQLite (WAL, synchronous=NORMAL, as the
    ledger opens it) on the disk the benchmark's ledgers live on. The ingest figures move with
    it more than with anything else measured (README, "Benchmarks"): a machine whose ledger
    commits took about 500 us (profiled inside `report_run`) ingested single reports at a third
    of the rate of one where they took about 130 us."""
    import sqlite3

    with tempfile.TemporaryDirectory(prefix="cleanday-commit-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "probe.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        started = time.perf_counter()
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20_000, help="reports per path")
    parser.add_argument("--behaviors", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64, help="client connections")
    parser.add_argument("--batch", type=int, default=100, help="reports per batch request")
    parser.add_argument(
        "--batch-concurrency", type=int, default=4, help="client connections sending batches"
    )
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--quick", action="store_true", help="2,000 reports per path")
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log every request at info level, as `cleanday serve` does (default: off)",
    )
    parser.add_argument(
        "--only", choices=["single", "batch", "http-only"], action="append",
        help="measure only this path (repeatable); default: all three",
    )  # fmt: skip
    parser.add_argument(
        "--in-process", action="store_true", help="also time the ledger calls without HTTP"
    )
    args = parser.parse_args()
    if args.quick:
        args.reports = 2_000
    args.behaviors = max(args.behaviors, args.concurrency)  # a behavior's reports on one conn
    print(
        f"ingest benchmark: SQLite, {args.behaviors} behaviors, {args.workers} server "
        f"worker(s), {args.clients} client process(es), {os.cpu_count()} CPU(s)",
        flush=True,
    )
    print(f"disk: one SQLite commit in {tempfile.gettempdir()} takes {commit_cost_us():.0f} us")
    for mode in args.only or ["single", "batch", "http-only"]:
        measure(args, mode)
    if args.in_process:
        n = min(args.reports, 2_000)
        one = in_process(n, args.behaviors, 0)
        many = in_process(n, args.behaviors, args.batch)
        print(
            f"in process: {n} reports, SQLite: report_run {one:,.0f} reports/s, "
            f"report_runs (batches of {args.batch}) {many:,.0f} reports/s"
        )


if __name__ == "__main__":
    main()
