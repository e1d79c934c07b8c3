"""The operator's loop end to end, as a person runs it: the real `cleanday up` (the Temporal dev
server, SQLite, the local model provider) in a temporary directory, and every step a `cleanday`
verb in its own process, run from the operator's own folder outside this repository, with no
PYTHONPATH:

1. `cleanday new NAME --dir <folder>` scaffolds a behavior in the operator's behaviors folder
   (CLEANDAY_BEHAVIORS_DIR), which the running stack has never seen;
2. `cleanday register` registers it while the stack runs (no restart);
3. `cleanday run NAME --wait` runs it now: the worker imports the step code from that folder,
   and the run, at tier A, ends waiting for sign-off;
4. `cleanday batch list` shows what the proposal would do, `cleanday batch approve` approves it;
5. the run acts: `cleanday show` has the approval and the act's permit, and the run's sink has
   the line;
6. SIGHUP to `cleanday up` (a closed terminal) stops every part, and no process is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

NAME = "desk_notes"
READY = "Pane of Glass:"
START_TIMEOUT_S = 120  # the dev server, the service and a polling worker, on a busy machine


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc, by parent)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The operator's folder (their behaviors in `my_behaviors/`, outside this repository) and
    the environment of their shell: the stack's ports and data directory, nothing of this
    repository's (no PYTHONPATH, no CLEANDAY_ or TEMPORAL_ settings from the test run)."""
    home = tmp_path / "operator"
    (home / "my_behaviors").mkdir(parents=True)
    temporal, ui, service, provider = _free_ports(4)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLEANDAY_", "TEMPORAL_")) and k not in ("PYTHONPATH", "DATABASE_URL")
    }
    env.update(
        CLEANDAY_DATA_DIR=str(home / "data"),
        CLEANDAY_BEHAVIORS_DIR=str(home / "my_behaviors"),
        TEMPORAL_ADDRESS=f"127.0.0.1:{temporal}",
        TEMPORAL_UI_PORT=str(ui),
        CLEANDAY_PORT=str(service),
        CLEANDAY_LOCAL_PROVIDER_PORT=str(provider),
        CLEANDAY_SCHEDULER="false",
        CLEANDAY_TIMEZONE="UTC",
    )
    yield home, env
    # whatever a failed test left: stopped by pid file, never by name
    subprocess.run(
        [sys.executable, "-m", "cleanday.cli", "down"], env=env, cwd=home, capture_output=True
    )


def _cli(
    home: Path, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "cleanday.cli", *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(f"{time.monotonic() - t0:6.1f} s  cleanday {' '.join(args[:2])}")
    return done


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (
        f"{done.args[3:]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def test_register_run_approve_act_then_sighup_leaves_no_process(
    operator: tuple[Path, dict[str, str]],
) -> None:
    home, env = operator
    log = home / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "cleanday.cli", "up"],
            env=env,
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while READY not in log.read_text(errors="replace"):
            assert up.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"`cleanday up` not ready:\n{log.read_text()}"
            time.sleep(0.3)
        print(f"{time.monotonic() - deadline + START_TIMEOUT_S:6.1f} s  cleanday up ready")

        # the worker polls, and has read no Work Order at its start: the one to come is new
        worker_log = home / "data" / "logs" / "worker.log"
        assert "worker on task queue cleanday, 0 behaviors" in worker_log.read_text()

        # -- a new behavior, scaffolded and registered while the stack runs
        _ok(_cli(home, env, "new", NAME, "--dir", "my_behaviors"))
        work_order = home / "my_behaviors" / f"{NAME}.yaml"
        assert (home / "my_behaviors" / f"{NAME}.py").is_file()
        _ok(_cli(home, env, "register", str(work_order)))

        # -- run it now and follow it: tier A proposes, so it ends waiting for sign-off
        ran = _ok(_cli(home, env, "run", NAME, "--wait", "--timeout", "45", timeout=60))
        assert f"of {NAME}" in ran and "Temporal UI: http" in ran, ran
        assert "gate sensitive_info: passed" in ran, ran
        assert "proposed: waits for batch approval" in ran, ran

        # -- the proposal shows what it would do; approve it
        listed = _ok(_cli(home, env, "batch", "list", NAME))
        (item,) = re.findall(r"^(\S+): Proposal: note ", listed, re.M)
        assert f"1. append_log -> {NAME}.log" in listed, listed
        assert f"line: local answer for {NAME}" in listed, listed
        approved_now = _ok(_cli(home, env, "batch", "approve", NAME, item))
        assert f"{NAME}: approved {item}" in approved_now, approved_now

        # -- the run acts: its permit is in the ledger, after the approval
        deadline = time.monotonic() + 30
        while True:
            history = json.loads(_ok(_cli(home, env, "show", NAME, "--json")))["history"]
            kinds = [e["kind"] for e in history]
            if "permit" in kinds:
                break
            assert time.monotonic() < deadline, f"no act in the ledger: {kinds}"
            time.sleep(0.5)
        approved = next(e for e in history if e["kind"] == "approved")
        assert item in json.dumps(approved["data"]), approved
        assert kinds.index("approved") < kinds.index("permit")
        # what it did: the line its step code wrote, in the behavior's sink
        (line,) = (home / "data" / "sinks" / NAME / f"{NAME}.log").read_text().splitlines()
        assert f"local answer for {NAME}" in line and not line.startswith("- "), line

        # -- SIGHUP (a closed terminal): every part stops, no process is left
        parts = _descendants(up.pid)
        assert len(parts) >= 4, parts  # temporal, provider, service, worker
        t0 = time.monotonic()
        up.send_signal(signal.SIGHUP)
        assert up.wait(timeout=60) == 0, log.read_text()
        print(f"{time.monotonic() - t0:6.1f} s  SIGHUP to exit")
        deadline = time.monotonic() + 30
        while [p for p in parts if _alive(p)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in parts if _alive(p)] == [], log.read_text()
        assert "no cleanday stack is running" in _ok(_cli(home, env, "down"))
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
