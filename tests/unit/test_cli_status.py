"""`cleanday status`, the doctor: what it checks, what it says to fix, and that it never prints
a secret."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cleanday.cli import app
from cleanday.config import Settings
from cleanday.db import make_engine, write_connection
from cleanday.models import T_OUTBOX

REPO = Path(__file__).resolve().parents[2]
CANARY = "status-canary-3f9c1d2e7a"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLEANDAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER", raising=False)
    for var in ("CLEANDAY_PORT", "CLEANDAY_LOCAL_PROVIDER_PORT", "TEMPORAL_UI_PORT"):
        monkeypatch.setenv(var, str(_closed_port()))
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{_closed_port()}")
    monkeypatch.chdir(REPO)
    assert CliRunner().invoke(app, ["register", "behaviors/"]).exit_code == 0
    return tmp_path / "data"


def _status() -> tuple[int, dict[str, dict[str, object]], str]:
    result = CliRunner().invoke(app, ["status", "--json"])
    body = json.loads(result.stdout)
    checks = {f"{c['area']}: {c['subject']}": c for c in body["checks"]}
    return result.exit_code, checks, result.stdout


def test_status_names_each_problem_and_how_to_fix_it(env: Path) -> None:
    code, checks, _ = _status()
    assert code == 1
    assert checks["ledger: schema"]["ok"] is True
    assert checks["ledger: database"]["ok"] is True
    temporal = checks["temporal: frontend"]
    assert temporal["ok"] is False and "TEMPORAL_ADDRESS" in str(temporal["detail"])
    hook = checks["references: webhook_logger webhook secret"]
    assert hook["ok"] is False and "environment variable not set" in str(hook["detail"])
    # a key only the local provider would use is a note, not a problem
    key = checks["references: tag_audit key"]
    assert key["needed"] is False
    assert checks["processes: embedded stack"]["needed"] is False
    # registering queued its notices (Slack, Notion): they wait, fresh, and that is fine
    assert checks["outbox: waiting"]["ok"] is True
    assert "row(s) waiting" in str(checks["outbox: waiting"]["detail"])


def test_status_resolves_references_without_printing_them_and_reports_the_outbox(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER", CANARY)
    engine = make_engine(settings=Settings())
    with engine.connect() as conn:
        queued = conn.execute(
            sa.select(sa.func.count()).where(
                T_OUTBOX.c.delivered_at.is_(None), T_OUTBOX.c.dropped_at.is_(None)
            )
        ).scalar_one()
    old = datetime.now(UTC) - timedelta(hours=3)
    with write_connection(engine) as conn:
        for i in range(3):
            conn.execute(
                T_OUTBOX.insert().values(
                    channel="slack",
                    kind="alert",
                    dedupe_key=f"k{i}",
                    payload={},
                    created_at=old + timedelta(minutes=i),
                    attempts=2 if i == 0 else 0,
                    last_error="503 from slack" if i == 0 else None,
                )
            )
    engine.dispose()
    _, checks, text = _status()
    assert CANARY not in text
    hook = checks["references: webhook_logger webhook secret"]
    assert hook["ok"] is True
    assert hook["detail"] == "env:CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER resolves"
    waiting = checks["outbox: waiting"]
    assert waiting["ok"] is False  # three hours old
    assert str(waiting["detail"]).startswith(f"{queued + 3} row(s) waiting, oldest since ")
    assert "slack failed 2x: 503 from slack" in str(waiting["detail"])
    plain = CliRunner().invoke(app, ["status"])
    assert CANARY not in plain.stdout
    assert "FAIL temporal: frontend" in plain.stdout


def test_status_says_when_the_schema_is_behind(env: Path) -> None:
    engine = make_engine(settings=Settings())
    with write_connection(engine) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0011_pane'")
    engine.dispose()
    code, checks, _ = _status()
    assert code == 1
    assert "run `cleanday migrate`" in str(checks["ledger: schema"]["detail"])
    shown = CliRunner().invoke(app, ["ledger"])
    assert shown.exit_code == 1
    assert "run `cleanday migrate`" in shown.stderr


def test_status_counts_each_behaviors_infrastructure_errors_today_and_over_seven_days(
    env: Path,
) -> None:
    from cleanday.ledger import LedgerService
    from tests.integration.ledger_fixtures import report

    now = datetime.now(UTC)
    service = LedgerService.open(Settings())
    _, checks, _ = _status()
    assert checks["infra errors: behaviors"]["detail"] == "none in the last 7 days"
    for i, (ago, infra) in enumerate(
        [(timedelta(0), "secret"), (timedelta(days=3), "secret"), (timedelta(days=3), "ledger"),
         (timedelta(days=10), "secret")]
    ):  # fmt: skip
        service.report_run(
            report("tag_audit", f"infra-{i}", now - ago, outcome="infra_error", infra=infra)
        )
    service.report_run(report("tag_audit", "fine-1", now))  # a run that ran is not counted
    service.engine.dispose()
    _, checks, _ = _status()
    seen = checks["infra errors: tag_audit"]
    assert seen["needed"] is False and seen["ok"] is False  # a note: exit code unchanged
    assert str(seen["detail"]).startswith("1 today, 3 in the last 7 days (since ")
    assert str(seen["detail"]).endswith("UTC): secret 2, ledger 1")
    assert "infra errors: behaviors" not in checks
    plain = CliRunner().invoke(app, ["status"])
    assert "infra errors: tag_audit" in plain.stdout
