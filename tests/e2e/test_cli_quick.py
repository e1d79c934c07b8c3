"""The read verbs' quick way (`cleanday.cli.quick`) end to end: a real `cleanday serve` on a real
ledger (SQLite and PostgreSQL), the `cleanday` command as an operator types it.

Each read verb prints the same asked of the service as read from the database. That the
service answered is proven by a database the quick way cannot open: it never opens one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cleanday.ledger import ItemIn, LedgerService, RunReport
from cleanday.registration import parse_work_order
from cleanday.runtime import stackfiles
from tests.e2e.test_api import work_order

ROOT = Path(__file__).resolve().parents[2]
# a database nothing listens on: a verb that opens it fails
NO_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"

READS = [
    ["ledger"],
    ["ledger", "--json", "--all"],
    ["show", "alpha"],
    ["show", "alpha", "--json"],
    ["review"],
    ["review", "--json", "--week", "2026-11-29"],
    ["batch", "list", "alpha"],
    ["batch", "list", "--all", "alpha", "--json"],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cleanday.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _seed(engine: Any) -> None:
    """Two behaviors; alpha has runs, one of them a proposal with content awaiting sign-off."""
    service = LedgerService(engine)
    for name in ("alpha", "beta"):
        text = work_order(name)
        service.register_work_order(parse_work_order(text, f"{name}.yaml"), "test", text)
    now = datetime.now(UTC)
    for i, outcome in enumerate(("succeeded", "proposed")):
        finished = now - timedelta(minutes=10 - i)
        content = {"summary": "tag two notes", "actions": [{"kind": "tag", "target": "n1"}]}
        service.report_run(
            RunReport(
                behavior="alpha",
                run_id=f"alpha-{i}",
                workflow_id=f"wf-alpha-{i}",
                started_at=finished - timedelta(seconds=5),
                finished_at=finished,
                outcome=outcome,
                cost_usd=0.01,
                items=[ItemIn(id=f"wf-alpha-{i}", payload=content)] if i else [],
            )
        )


@pytest.fixture
def served(engine: Any, tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """The CLI's environment on a seeded ledger, and the URL of `cleanday serve` on it."""
    _seed(engine)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CLEANDAY_", "DATABASE"))},
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
        "CLEANDAY_TIMEZONE": "UTC",
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "cleanday.cli", "serve", "--port", str(port), "--no-scheduler"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield env, url
    finally:
        serve.terminate()
        serve.wait(timeout=15)


def test_every_read_verb_prints_the_same_asked_of_the_service(
    served: tuple[dict[str, str], str],
) -> None:
    env, url = served
    quick = dict(env, CLEANDAY_URL=url, DATABASE_URL=NO_DATABASE)
    for args in READS:
        read, asked = _cli(env, *args), _cli(quick, *args)
        assert read.returncode == 0, (args, read.stderr)
        assert (asked.returncode, asked.stdout, asked.stderr) == (0, read.stdout, ""), args
    assert "tag two notes" in _cli(quick, "batch", "list", "alpha").stdout
    # the database the quick way never opened: the typer command says it cannot be used
    opened = _cli(quick, "ledger", "--help")
    assert opened.returncode == 0  # not a read the quick way knows: the typer command answers
    refused_db = _cli(dict(quick, CLEANDAY_URL="http://127.0.0.1:1"), "ledger")
    assert refused_db.returncode == 1
    assert "cannot use the ledger database" in refused_db.stderr


def test_the_ledgers_refusal_is_its_own_message(served: tuple[dict[str, str], str]) -> None:
    env, url = served
    quick = dict(env, CLEANDAY_URL=url, DATABASE_URL=NO_DATABASE)
    for args in (["show", "ghost"], ["batch", "list", "ghost"]):
        read, asked = _cli(env, *args), _cli(quick, *args)
        assert read.returncode == 1 and "no behavior named 'ghost'" in read.stderr
        assert (asked.returncode, asked.stdout, asked.stderr) == (1, read.stdout, read.stderr)


def test_no_service_answering_means_the_database_is_read(
    served: tuple[dict[str, str], str],
) -> None:
    env, _ = served
    down = dict(env, CLEANDAY_URL=f"http://127.0.0.1:{_free_port()}")
    for args in (["ledger"], ["show", "alpha"]):
        read, fallen_back = _cli(env, *args), _cli(down, *args)
        assert fallen_back.returncode == 0, fallen_back.stderr
        assert fallen_back.stdout == read.stdout


def test_the_embedded_stacks_service_is_asked_while_it_runs(
    served: tuple[dict[str, str], str],
) -> None:
    """`cleanday up` records where its ledger service answers; the read verbs of its data dir
    ask it there, and stop when the process its pid file names is gone."""
    env, url = served
    data_dir = Path(env["CLEANDAY_DATA_DIR"])
    expected = _cli(env, "ledger").stdout
    stack_env = dict(env, DATABASE_URL=NO_DATABASE)
    # a stand-in for the stack's service process: alive, and a cleanday command line
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "cleanday", "serve"]
    )
    try:
        stackfiles.write_pid(data_dir, "ledger service", stand_in.pid)
        stackfiles.write_url(data_dir, "ledger service", url)
        asked = _cli(stack_env, "ledger")
        assert (asked.returncode, asked.stdout) == (0, expected), asked.stderr
    finally:
        stand_in.kill()
        stand_in.wait()
    gone = _cli(stack_env, "ledger")
    assert gone.returncode == 1 and "cannot use the ledger database" in gone.stderr
    stackfiles.remove_pid(data_dir, "ledger service")
    assert not stackfiles.url_file(data_dir, "ledger service").exists()
