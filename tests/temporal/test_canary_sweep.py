"""The canary sweep: a planted key value never reaches the ledger, files, logs or Temporal.

The demo runs one simulated week with every built-in behavior's key (and the webhook secret)
set to a canary value nobody would type, with DEBUG logging on; then every place a secret could
end up is searched for it: each table of the ledger database, each file under the data dir,
stdout/stderr, log records (with their tracebacks), every run's Temporal history, and the
local provider's request log. The provider must have *received* the key — in the header, which
is where it belongs — or the sweep would prove nothing: the provider keeps only a fingerprint,
and the test checks that fingerprint is the canary's.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import socket
import sqlite3
import traceback
import uuid
from pathlib import Path

import httpx
import pytest

from cleanday.budget import SpendStore
from cleanday.config import Settings
from cleanday.db import make_engine, migrate
from cleanday.domain import Tier
from cleanday.errors import RoutingError
from cleanday.presets import PresetStore
from cleanday.router import Router
from cleanday.runtime.demo import DemoTrace, run_demo
from cleanday.runtime.worker import load_work_orders
from cleanday.secrets import SecretResolver
from cleanday.workorder import WorkOrder

HOOK_SECRET_VAR = "CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER"
# error paths with provider texts in them: a fallback-less 500 (every transport failed), a 402
# (budget), three 429s (rate limited); each surfaces in logs, the ledger and run histories
FAULTS = [
    {"behavior": "tag_audit", "fault": "500", "count": 1},
    {"behavior": "model_roll_call", "fault": "402", "count": 1},
    {"behavior": "morning_digest", "fault": "429", "count": 3, "retry_after": 0},
]
LOGGERS = ("cleanday", "httpx", "httpcore", "temporalio", "workflows", "behaviors")


def _key_vars() -> dict[str, str]:
    """Each built-in behavior's key environment variable, from its Work Order's `env:` ref."""
    found = load_work_orders(Settings().behaviors_dir)
    refs = {name: wo.key.ref for name, (wo, _) in found.items()}
    assert refs and all(ref.startswith("env:") for ref in refs.values()), refs
    return {name: ref.removeprefix("env:") for name, ref in refs.items()}


def _fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def _where(canaries: list[str], places: dict[str, str | bytes]) -> list[str]:
    """The places holding any canary, as 'place: …context…' for the failure message."""
    hits = []
    for place, blob in places.items():
        text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
        for canary in canaries:
            at = text.find(canary)
            if at >= 0:
                hits.append(f"{place}: …{text[max(0, at - 80) : at + len(canary) + 40]}…")
    return hits


def _history_text(history_json: str) -> str:
    """A history's JSON with every payload decoded: protobuf JSON writes payload bytes as
    base64, where a plain search would never see a secret."""
    out: list[str] = [history_json]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and len(node) >= 8:
            with contextlib.suppress(binascii.Error, ValueError):
                out.append(base64.b64decode(node, validate=True).decode("utf-8", "replace"))

    walk(json.loads(history_json))
    return "\n".join(out)


def _tables(db: Path) -> dict[str, str]:
    """Every row of every table of the ledger database, one text per table."""
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            f"table {name}": "\n".join(
                str(row) for row in conn.execute(f'SELECT * FROM "{name}"').fetchall()
            )
            for name in names
        }


def _files(root: Path) -> dict[str, bytes]:
    return {f"file {p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.temporal
@pytest.mark.slow
async def test_planted_key_and_hook_secret_never_leave_the_request_headers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    key_vars = _key_vars()
    key = f"test-canary-{uuid.uuid4().hex}"
    hook_secret = f"test-canary-hook-{uuid.uuid4().hex}"
    for var in key_vars.values():
        monkeypatch.setenv(var, key)
    monkeypatch.setenv(HOOK_SECRET_VAR, hook_secret)
    canaries = [key, hook_secret]
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    places: dict[str, str | bytes] = {}
    seen: dict[str, int] = {}

    async def sweep(trace: DemoTrace) -> None:
        # Temporal: every run the demo started, its whole history (inputs, results, failures)
        assert trace.workflow_ids
        for wid in trace.workflow_ids:
            history = await trace.client.get_workflow_handle(wid).fetch_history()
            seen["events"] = seen.get("events", 0) + len(history.events)
            places[f"history {wid}"] = _history_text(history.to_json())
        # the local provider's request log: what it keeps of every request it received
        received = httpx.get(f"{trace.provider_url}/_control/requests").json()
        seen["requests"] = len(received)
        places["provider request log"] = str(received)
        prints = {r.get("key") for r in received}
        assert prints == {_fingerprint(key)}, (
            "every model request must carry the behavior's key in its header (else this sweep "
            f"proves nothing); the provider saw key fingerprints {prints}"
        )
        # the ledger database, while the demo's connections are still open (WAL not folded)
        db = Path(trace.database_url.removeprefix("sqlite:///"))
        tables = _tables(db)
        seen["rows"] = sum(len(t.splitlines()) for t in tables.values())
        places.update(tables)
        places.update({f"{k} (live)": v for k, v in _files(trace.data_dir).items()})

    lines: list[str] = []
    data = tmp_path / "data"
    data.mkdir()
    result = await run_demo(weeks=1, out=lines.append, data_dir=data, inspect=sweep, faults=FAULTS)

    places.update(_files(data))
    places.update(_tables(data / "ledger.db"))
    out, err = capfd.readouterr()
    places["stdout"], places["stderr"] = out, err
    places["demo output"] = "\n".join(lines)
    places["log records"] = caplog.text
    places["log arguments"] = "\n".join(repr(r.args) for r in caplog.records)

    # the sweep looked where things are: every run, real model calls, rows, logs, sink files
    assert len(result.workflow_ids) == result.runs == 8 * len(key_vars)
    assert seen["requests"] >= result.runs
    assert seen["events"] > 10 * result.runs
    assert seen["rows"] > result.runs
    assert any(r.name.startswith("httpx") for r in caplog.records)
    assert any(p.startswith("file ") and "ledger.db" not in p for p in places)
    assert any("webhook_logger" in line for line in lines)
    assert {"tag_audit", "model_roll_call", "morning_digest"} <= {
        line.split(":")[0].strip(" !~") for line in lines if line.startswith("  ! ")
    }, "the queued faults must have failed their runs (the error paths were not exercised)"

    leaks = _where(canaries, places)
    assert not leaks, "the planted secret leaked:\n" + "\n".join(leaks)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_errors_on_every_transport_never_carry_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx errors hold the request, headers and all (and httpx masks only Authorization in
    a repr, not Anthropic's x-api-key): nothing the router raises or logs may show them."""
    key = f"test-canary-{uuid.uuid4().hex}"
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    dead = f"http://127.0.0.1:{_closed_port()}"
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    settings = Settings.model_validate(
        {
            "OPENROUTER_BASE_URL": dead + "/v1",
            "ANTHROPIC_BASE_URL": dead,
            "CLEANDAY_LOCAL_PROVIDER_URL": dead + "/v1",
            "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
        }
    )
    router = Router(
        settings,
        SpendStore(engine),
        PresetStore(engine),
        SecretResolver(env={"KEY_CANARY": key}),
    )
    router.bind_local(
        WorkOrder.model_validate(
            {
                "name": "canary",
                "description": "test behavior",
                "trigger": {"type": "interval", "every_seconds": 60},
                "reports": "nothing",
                "key": {"ref": "env:KEY_CANARY", "cap_usd": 1.0},
                "preset": {"name": "canary", "model": "anthropic/test-model-a"},
                "transports": {"order": ["openrouter", "anthropic", "local"]},
                "entry": "behaviors.x:run",
            }
        )
    )
    with pytest.raises(RoutingError) as err:
        await router.complete("canary", Tier.A, [{"role": "user", "content": "hi"}])
    attempts = getattr(err.value, "attempts", ())
    assert [a.transport for a in attempts] == ["openrouter", "anthropic", "local"]
    texts = {
        "str": str(err.value),
        "repr": repr(err.value),
        "attempts": repr(attempts),
        "traceback with causes": "".join(traceback.format_exception(err.value)),
        "log records": caplog.text,
        "ledger": "\n".join(_tables(tmp_path / "ledger.db").values()),
    }
    leaks = _where([key], dict(texts))
    assert not leaks, "the key leaked through an error path:\n" + "\n".join(leaks)
    engine.dispose()
