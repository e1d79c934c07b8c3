"""CLI start-up benchmark: the read verbs against `python -c pass`, measured in the same run.

A fresh SQLite ledger gets 50 behaviors (the shipped tag_audit Work Order under 50 names, each
with its own key), a few run reports and a waiting proposal, so that every verb reads real rows.
`cleanday serve` then runs on it, and each verb is timed twice: asking that service (the quick
way, `cleanday.cli.quick`: what an operator gets with the stack up) and reading the database
itself (no service up). Each command runs as its own process (what an operator types),
alternated round by round, after one warm-up round; the figures are wall-clock seconds,
min / median / max.

    python bench/cli_bench.py                # 50 behaviors, 15 rounds
    python bench/cli_bench.py --rounds 5     # quicker
    python bench/cli_bench.py --baseline /tmp/main-src   # also time another checkout's src/
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 0.3


def seed(data_dir: Path, behaviors: int) -> None:
    from cleanday.config import Settings
    from cleanday.ledger import GateIn, ItemIn, LedgerService, RunReport
    from cleanday.registration import parse_work_order

    settings = Settings()  # CLEANDAY_DATA_DIR set by main
    data_dir.mkdir(parents=True, exist_ok=True)
    service = LedgerService.open(settings)
    base = yaml.safe_load((REPO / "behaviors" / "tag_audit.yaml").read_text())
    now = datetime.now(UTC)
    for i in range(behaviors):
        wo = dict(base, name=f"bench_{i:03d}")
        wo["key"] = dict(base["key"], ref=f"env:CLEANDAY_KEY_BENCH_{i:03d}")
        text = yaml.safe_dump(wo)
        service.register_work_order(parse_work_order(text, f"bench_{i:03d}.yaml"), "bench", text)
        for r in range(3):
            started = now - timedelta(minutes=10 + r)
            item = [ItemIn(id=f"p{r}", payload={"n": r})] if r == 0 else []
            service.report_run(
                RunReport(
                    behavior=f"bench_{i:03d}",
                    run_id=f"bench-{i}-{r}",
                    workflow_id=f"wf-{i}-{r}",
                    started_at=started,
                    finished_at=started + timedelta(seconds=2),
                    outcome="proposed" if r == 0 else "succeeded",
                    gates=[GateIn(name="schema", passed=True, reason="ok")],
                    cost_usd=0.001,
                    items=item,
                )
            )
    service.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--behaviors", type=int, default=50)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout's src/ directory: its verbs are timed too, in the same rounds",
    )
    args = parser.parse_args()
    cli = [sys.executable, "-m", "cleanday.cli"]
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("CLEANDAY_URL", None)
        os.environ["CLEANDAY_DATA_DIR"] = str(data_dir)
        seed(data_dir, args.behaviors)
        env = dict(os.environ)
        port = _free_port()
        serve = subprocess.Popen(
            [*cli, "serve", "--port", str(port), "--no-scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_up(f"http://127.0.0.1:{port}/healthz", serve)
            times = _time(cli, env, f"http://127.0.0.1:{port}", args)
        finally:
            serve.terminate()
            serve.wait(timeout=15)
    _report(times, args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, serve: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and serve.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("cleanday serve did not start")


def _time(
    cli: list[str], env: dict[str, str], url: str, args: argparse.Namespace
) -> dict[str, list[float]]:
    verbs = {
        "ledger": ["ledger"],
        "show": ["show", "bench_007"],
        "review": ["review"],
        "batch list": ["batch", "list", "bench_007"],
    }
    asked = dict(env, CLEANDAY_URL=url)
    commands: dict[str, list[str]] = {"python -c pass": [sys.executable, "-c", "pass"]}
    envs = {"python -c pass": env}
    for verb, argv in verbs.items():
        commands[f"{verb}, service up"] = [*cli, *argv]
        envs[f"{verb}, service up"] = asked
        commands[f"{verb}, database"] = [*cli, *argv]
        envs[f"{verb}, database"] = env
    if args.baseline is not None:
        old = dict(env, PYTHONPATH=str(args.baseline.resolve()))
        for verb, argv in verbs.items():
            commands[f"{verb} (baseline)"] = [*cli, *argv]
            envs[f"{verb} (baseline)"] = old
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(args.rounds + 1):
        for name, argv in commands.items():
            started = time.perf_counter()
            done = subprocess.run(argv, env=envs[name], capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip()}")
            if round_:  # round 0 warms the page cache
                times[name].append(elapsed)
    return times


def _report(times: dict[str, list[float]], args: argparse.Namespace) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.behaviors} behaviors, {args.rounds} rounds, load average {load:.2f} "
        f"on {os.cpu_count()} CPUs; seconds per command (min / median / max)"
    )
    base = statistics.median(times["python -c pass"])
    for name, ts in times.items():
        med = statistics.median(ts)
        extra = "" if name.startswith("python") else f"   {med - base:+.3f} over python"
        flag = "" if name.startswith("python") or med < TARGET_S else f"   (target {TARGET_S})"
        print(f"{name:<31} {min(ts):.3f} / {med:.3f} / {max(ts):.3f}{extra}{flag}")


if __name__ == "__main__":
    main()
