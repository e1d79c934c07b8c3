"""The embedded stack as a person runs it: `cleanday up` on free ports with the real Temporal dev
server, stopped by SIGHUP (a closed terminal) or SIGTERM as by Ctrl-C; a leftover from an
earlier run is named with the way to stop it; `up --detach`, `logs` and `down`; the built-in
webhook behavior's secret generated so that its first signed request is accepted."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cleanday.runtime import stackfiles

REPO = Path(__file__).resolve().parents[2]
READY = "Pane of Glass:"
START_TIMEOUT_S = 240


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    temporal, ui, service, provider = _free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANDAY_", "TEMPORAL_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        CLEANDAY_DATA_DIR=str(tmp_path / "data"),
        TEMPORAL_ADDRESS=f"127.0.0.1:{temporal}",
        TEMPORAL_UI_PORT=str(ui),
        CLEANDAY_PORT=str(service),
        CLEANDAY_LOCAL_PROVIDER_PORT=str(provider),
        CLEANDAY_BEHAVIORS_DIR=str(REPO / "behaviors"),
        CLEANDAY_SCHEDULER="false",
    )
    yield env
    # whatever a failed test left: stopped by pid, never by name
    subprocess.run([sys.executable, "-m", "cleanday.cli", "down"], env=env, capture_output=True)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cleanday.cli", *args], env=env, capture_output=True, text=True
    )


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cleanday.cli", "up"], env=env, stdout=out, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while READY not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours is gone for every purpose but the process table
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pids: list[int], timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_a_signal_to_up_stops_every_part_and_leaves_no_process(
    stack_env: dict[str, str], tmp_path: Path, signum: int
) -> None:
    data = Path(stack_env["CLEANDAY_DATA_DIR"])
    proc = _start(stack_env, tmp_path / "up.log")
    parts = stackfiles.running(data)
    assert {p.part for p in parts} == {
        "up", "temporal", "local model provider", "ledger service", "worker"
    }  # fmt: skip
    pids = [p.pid for p in parts]
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 0
    assert _wait_gone(pids) == []
    assert stackfiles.running(data) == []
    assert "stopping worker" in (tmp_path / "up.log").read_text()


def test_a_leftover_is_named_with_the_way_to_stop_it_and_down_stops_it(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    data = Path(stack_env["CLEANDAY_DATA_DIR"])
    proc = _start(stack_env, tmp_path / "up.log")
    proc.send_signal(signal.SIGKILL)  # the supervisor dies; its parts are left behind
    proc.wait()
    left = stackfiles.running(data)
    assert "worker" in {p.part for p in left}
    again = _cli(stack_env, "up")
    assert again.returncode == 1
    assert "a cleanday stack from an earlier run is still running" in again.stderr
    worker = next(p for p in left if p.part == "worker")
    assert f"worker (pid {worker.pid})" in again.stderr
    assert "cleanday down" in again.stderr
    down = _cli(stack_env, "down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert _wait_gone([p.pid for p in left]) == []
    assert "no cleanday stack is running" in _cli(stack_env, "down").stdout


def test_detached_stack_takes_its_first_signed_webhook_and_shows_logs_until_down(
    stack_env: dict[str, str],
) -> None:
    data = Path(stack_env["CLEANDAY_DATA_DIR"])
    started = _cli(stack_env, "up", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    assert READY in started.stdout and "cleanday down" in started.stdout
    assert "Webhook secret: CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER in" in started.stdout
    # no Notion or Slack token here: said once at start, and the outbox keeps the messages
    off = "Delivery off:   Notion (no NOTION_TOKEN) and Slack (no SLACK_BOT_TOKEN)"
    assert started.stdout.count(off) == 1, started.stdout
    secret_file = data / "webhook-secrets" / "CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    secret = secret_file.read_text().strip()
    assert secret not in started.stdout
    body = json.dumps({"event": "hello", "id": "evt-1"}).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    url = f"http://127.0.0.1:{stack_env['CLEANDAY_PORT']}/hooks/webhook_logger"
    answer = httpx.post(
        url,
        content=body,
        headers={
            "content-type": "application/json",
            "x-cleanday-timestamp": stamp,
            "x-cleanday-signature": f"sha256={signature}",
        },
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    logs = _cli(stack_env, "logs", "service", "-n", "200")
    assert logs.returncode == 0 and "/hooks/webhook_logger" in logs.stdout
    everything = _cli(stack_env, "logs")
    assert "worker" in everything.stdout and "ledger-service" in everything.stdout
    assert _cli(stack_env, "logs", "nonesuch").returncode == 2
    pids = [p.pid for p in stackfiles.running(data)]
    assert _cli(stack_env, "down").returncode == 0
    assert _wait_gone(pids) == []
