"""Governed-run overhead: a behavior run through the whole path vs a bare one-activity workflow.

Both make the same model call (through the router to the local provider) on the same Temporal
dev server, in the same process, alternating (bare, governed, bare, governed, ...):
- bare: a workflow whose only activity makes the call, on a worker with Temporal's defaults;
- governed: the BehaviorRun workflow at tier C on the worker `cleanday worker` runs
  (runtime.worker.create_worker) — the binding, the step (the call), gates and anomaly
  detectors, the ledger's act permit, the act through the file sink, the run report — against
  the ledger service over loopback HTTP (SQLite).
N runs are started at once and the clock stops when the last one finishes. Each side's rate is
over all its rounds; CPU ms per run is printed for the worker (this process, with the local
provider), the ledger service and the Temporal dev server, which share the machine's cores.

    python bench/governed_bench.py --quick      # N=30
    python bench/governed_bench.py              # N=200
    python bench/governed_bench.py -n 100 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from cleanday.config import Settings
from cleanday.domain import Tier
from cleanday.ledger_client import LedgerClient
from cleanday.localprovider import local_provider_in_thread
from cleanday.router import Router
from cleanday.runtime.activities import RuntimeDeps
from cleanday.runtime.converter import with_converter
from cleanday.runtime.model import BoundModel, router_models
from cleanday.runtime.starter import start_run
from cleanday.runtime.worker import create_worker
from cleanday.sinks import FileSink
from cleanday.steps import Action, StepContext, StepResult
from cleanday.workorder import WorkOrder

BEHAVIOR = "bench_call"
TOKEN = "bench-token-2f6d"
PROMPT = [{"role": "user", "content": "Say one short sentence about rivers."}]


async def step(ctx: StepContext) -> StepResult:
    """The governed behavior's step: one model call, one file to write."""
    completion = await ctx.model.complete(PROMPT)
    return StepResult(
        output=completion.text,
        summary="1 sentence written.",
        actions=[Action("write", f"{ctx.run_id}.txt", {"content": completion.text})],
        completions=[completion],
    )


class _LedgerProcess:
    """The ledger service in its own process, as in a deployment (and as `cleanday up` runs it)."""

    def __init__(self, settings: Settings, data: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "CLEANDAY_TOKEN": TOKEN,
            "CLEANDAY_DATA_DIR": str(data),
            "DATABASE_URL": str(settings.database_url),
            "CLEANDAY_PORT": str(port),
            "CLEANDAY_SCHEDULER": "false",
            # registration checks that the step's entry point imports
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")]
            ),
        }
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cleanday.runtime.embedded", "service"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/behaviors", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the ledger service did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


class BareActivities:
    def __init__(self, router: Router) -> None:
        self.router = router

    @activity.defn(name="bare_call")
    async def call(self, run_id: str) -> str:
        model = BoundModel(self.router, BEHAVIOR, Tier.C, run_id)
        return (await model.complete(PROMPT)).text


def work_order() -> dict[str, Any]:
    return {
        "name": BEHAVIOR,
        "description": "one model call per run, for the benchmark",
        "trigger": {"type": "webhook", "secret_ref": "env:BENCH_UNUSED"},
        "reports": "the sentence it wrote",
        "key": {"ref": "env:BENCH_KEY", "cap_usd": 1000},
        "preset": {"name": BEHAVIOR, "model": "local/bench"},
        "gates": [{"name": "sensitive_info", "mode": "block"}],
        "entry": "governed_bench:step",
    }


def _cpu_seconds(pid: int | str) -> float:
    """User + system CPU a process has used so far (Linux /proc; 0 where it is unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _temporal_pid() -> int | None:
    """The dev server WorkflowEnvironment started: our child whose command line is `temporal`."""
    for task in Path("/proc/self/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]
            if cmdline.endswith(b"temporal"):
                return int(child)
    return None


async def _timed(label: str, n: int, start: Any, pids: dict[str, int | str]) -> float:
    """Start n runs at once, wait for all; print the rate and CPU per run by process.

    CPU per run is the figure to watch: worker, ledger and Temporal share the machine's cores,
    so the rate follows the sum.
    """
    cpu0 = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.perf_counter()
    handles = await asyncio.gather(*(start(i) for i in range(n)))
    await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - t0
    rate = n / elapsed
    cpu = "  ".join(
        f"{name} {(_cpu_seconds(pid) - cpu0[name]) * 1000 / n:5.1f}" for name, pid in pids.items()
    )
    print(f"{label:<9} {n} runs in {elapsed:6.2f} s  {rate:7.1f} runs/s   CPU ms/run: {cpu}")
    return rate


async def bench(n: int, rounds: int, data: Path, only: str | None = None) -> tuple[float, float]:
    from bare_call import BareCall  # type: ignore[import-not-found]
    from cleanday.db import make_engine, migrate

    bin_dir = Path(sys.executable).parent
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(bin_dir / "temporal"), dev_server_log_level="error"
    )
    client: Client = env.client
    db_url = f"sqlite:///{data / 'ledger.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    with local_provider_in_thread() as provider:
        settings = Settings(
            CLEANDAY_TOKEN=TOKEN,
            CLEANDAY_DATA_DIR=data,
            DATABASE_URL=db_url,
            CLEANDAY_LOCAL_PROVIDER_URL=provider.url + "/v1",
        )
        service = _LedgerProcess(settings, data)
        router = Router.from_settings(settings)
        text = yaml.safe_dump(work_order(), sort_keys=False)
        wo = WorkOrder.model_validate(work_order())
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        try:
            async with LedgerClient(service.url, TOKEN) as ledger:
                await ledger.register(text)
                await ledger.override(BEHAVIOR, "benchmark runs at C", "forced_tier", "C")
                await router.bind(wo)
                deps = RuntimeDeps(
                    ledger=ledger,
                    work_orders={BEHAVIOR: wo},
                    model_for=router_models(router),
                    sink=FileSink(data),
                    data_dir=data,
                )
                bare = BareActivities(router)
                # the governed side's worker is the one `cleanday worker` runs; the bare side's
                # is Temporal's defaults; both in this process, on the same dev server
                governed_worker = create_worker(client, deps, queue, max_concurrent_activities=200)
                bare_queue = f"{queue}-bare"
                bare_worker = Worker(
                    client,
                    task_queue=bare_queue,
                    workflows=[BareCall],
                    activities=[bare.call],
                    max_concurrent_activities=200,
                )
                async with governed_worker, bare_worker:
                    # warm up both paths (imports, connections, the provider's spec validator)
                    await (await start_run(client, BEHAVIOR, queue)).result()
                    await client.execute_workflow(
                        BareCall.run, id=f"bare-warm-{queue}", task_queue=bare_queue
                    )

                    async def start_bare(r: int, i: int) -> Any:
                        return await client.start_workflow(
                            BareCall.run, id=f"bare-{queue}-{r}-{i}", task_queue=bare_queue
                        )

                    # the governed runs' caller decodes their RunState as cleanday's clients do
                    cleanday_client = with_converter(client)

                    async def start_governed(r: int, i: int) -> Any:
                        return await start_run(cleanday_client, BEHAVIOR, queue, {"n": i, "r": r})

                    # worker = this process (worker, client, local provider thread)
                    pids: dict[str, int | str] = {"worker": "self"}
                    pids["ledger"] = service.process.pid
                    if (temporal := _temporal_pid()) is not None:
                        pids["temporal"] = temporal
                    # alternate the sides so a change in the machine's load hits both alike
                    bare_times, governed_times = [], []
                    for r in range(rounds):
                        go_bare = functools.partial(start_bare, r)
                        go_governed = functools.partial(start_governed, r)
                        if only != "governed":
                            bare_times.append(n / await _timed("bare", n, go_bare, pids))
                        if only != "bare":
                            governed_times.append(
                                n / await _timed("governed", n, go_governed, pids)
                            )
                    bare_rate = n * rounds / (sum(bare_times) or float("inf"))
                    governed_rate = n * rounds / (sum(governed_times) or float("inf"))
        finally:
            service.stop()
            await env.shutdown()
    return bare_rate, governed_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 runs instead of 200")
    parser.add_argument("-n", type=int, default=None, help="runs per side and round")
    parser.add_argument("--rounds", type=int, default=2, help="bare/governed rounds, alternated")
    parser.add_argument(
        "--only",
        choices=("bare", "governed"),
        help="run one side only (to profile it, e.g. under py-spy); no ratio is printed",
    )
    args = parser.parse_args()
    n = args.n or (30 if args.quick else 200)
    # the step's module and the bare workflow's, importable by name for the worker
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with tempfile.TemporaryDirectory(prefix="cleanday-bench-") as tmp:
        bare_rate, governed_rate = asyncio.run(bench(n, args.rounds, Path(tmp), args.only))
    if args.only:
        return
    ratio = bare_rate / governed_rate
    print(f"overall   bare {bare_rate:.1f} runs/s, governed {governed_rate:.1f} runs/s")
    verdict = "within" if ratio <= 1.5 else "above"
    print(f"overhead  bare/governed = {ratio:.2f}x ({verdict} the 1.5x target)")


if __name__ == "__main__":
    main()
