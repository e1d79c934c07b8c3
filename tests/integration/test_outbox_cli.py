"""`cleanday outbox`, `outbox retry` and `outbox drop` on the ledger database (both back ends)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from cleanday import outbox
from cleanday.cli import app
from cleanday.models import T_OUTBOX
from cleanday.outbox import Message, OutboxDelivery, Pending

NOW = datetime(2026, 11, 9, 12, tzinfo=UTC)


def test_the_outbox_verbs_list_retry_and_drop(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    with engine.begin() as conn:
        outbox.write(conn, [Message("slack", "gate_failure_alert", f"k{i}", {}) for i in range(3)],
                     NOW)  # fmt: skip

    async def down(row: Pending) -> str:
        raise ConnectionError("slack.com unreachable")

    delivery = OutboxDelivery(engine, {"slack": down}, routes={"slack": lambda r: "#alerts"})
    delivery.drain_now()
    delivery.close()
    runner = CliRunner()

    listed = runner.invoke(app, ["outbox"])
    assert listed.exit_code == 0, listed.output
    assert "#alerts" in listed.output and "slack.com unreachable" in listed.output
    (line,) = json.loads(runner.invoke(app, ["outbox", "--json"]).output)
    assert (line["channel"], line["target"], line["rows"], line["attempts"]) == (
        "slack", "#alerts", 3, 1,
    )  # fmt: skip
    assert line["next_attempt_at"] is not None

    assert runner.invoke(app, ["outbox", "retry"]).exit_code == 2  # ID or --all
    again = runner.invoke(app, ["outbox", "retry", str(line["head_id"])])
    assert again.exit_code == 0 and "1 row(s)" in again.output
    assert json.loads(runner.invoke(app, ["outbox", "--json"]).output)[0]["next_attempt_at"] is None
    assert runner.invoke(app, ["outbox", "retry", "--all"]).exit_code == 0

    missing = runner.invoke(app, ["outbox", "drop", "999", "--reason", "gone"])
    assert missing.exit_code == 1 and "no outbox row 999" in missing.output
    dropped = runner.invoke(app, ["outbox", "drop", str(line["head_id"]), "--reason", "test row"])
    assert dropped.exit_code == 0, dropped.output
    with engine.connect() as conn:
        reason = conn.execute(
            sa.select(T_OUTBOX.c.drop_reason).where(T_OUTBOX.c.id == line["head_id"])
        ).scalar_one()
    assert reason == "test row"
    assert json.loads(runner.invoke(app, ["outbox", "--json"]).output)[0]["rows"] == 2
