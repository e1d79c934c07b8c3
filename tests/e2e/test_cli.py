"""The `cleanday` CLI end to end over a real ledger database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from cleanday.cli import app
from tests.e2e.test_api import run_report, work_order

EXPECTED_KEYS = {
    "name", "tier", "status", "clean_days", "candidate", "last_gate_failure",
    "last_failure_reason",
}  # fmt: skip

runner = CliRunner()


@pytest.fixture
def env(engine: Any, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
        "CLEANDAY_TIMEZONE": "UTC",
    }


@pytest.fixture
def behaviors_dir(tmp_path: Path) -> Path:
    d = tmp_path / "behaviors"
    d.mkdir()
    for name in ("alpha", "beta"):
        (d / f"{name}.yaml").write_text(work_order(name))
    return d


def cli(env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, list(args), env=env)


def ledger_json(env: dict[str, str]) -> list[dict[str, Any]]:
    result = cli(env, "ledger", "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_register_a_directory_then_ledger_json_has_exactly_the_promised_fields(
    env: dict[str, str], behaviors_dir: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    result = cli(env, "register", str(behaviors_dir))
    assert result.exit_code == 0, result.output
    assert "alpha" in result.stdout and "beta" in result.stdout
    rows = ledger_json(env)
    assert [r["name"] for r in rows] == ["alpha", "beta"]
    for r in rows:
        assert set(r) == EXPECTED_KEYS
        assert r["tier"] == "A" and r["status"] == "active" and r["clean_days"] == 0
        assert r["candidate"] is False and r["last_gate_failure"] is None
    table = cli(env, "ledger")
    assert table.exit_code == 0 and "alpha" in table.stdout and "TIER" in table.stdout


def test_registering_an_unchanged_file_again_changes_nothing(
    env: dict[str, str], behaviors_dir: Path
) -> None:
    cli(env, "register", str(behaviors_dir / "alpha.yaml"))
    again = cli(env, "register", str(behaviors_dir / "alpha.yaml"))
    assert again.exit_code == 0 and "unchanged" in again.stdout


def test_an_error_prints_one_line_saying_what_to_fix_and_exits_non_zero(
    env: dict[str, str], behaviors_dir: Path, tmp_path: Path
) -> None:
    cli(env, "register", str(behaviors_dir))
    missing = cli(env, "show", "ghost")
    assert missing.exit_code == 1
    assert "ghost" in missing.output and "Traceback" not in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    clash = tmp_path / "gamma.yaml"
    clash.write_text(work_order("gamma", key="KEY_ALPHA"))
    refused = cli(env, "register", str(clash))
    assert refused.exit_code == 1 and "alpha" in refused.output
    assert "Traceback" not in refused.output


def test_pause_resume_retire_and_override_change_the_ledger(
    env: dict[str, str], behaviors_dir: Path
) -> None:
    cli(env, "register", str(behaviors_dir))
    assert "paused" in cli(env, "pause", "alpha").stdout
    assert {r["name"]: r["status"] for r in ledger_json(env)}["alpha"] == "paused"
    assert "active" in cli(env, "resume", "alpha").stdout
    forced = cli(env, "override", "beta", "--reason", "trusted by hand", "--tier", "C")
    assert forced.exit_code == 0, forced.output
    assert {r["name"]: r["tier"] for r in ledger_json(env)}["beta"] == "C"
    assert "retired" in cli(env, "retire", "alpha").stdout
    history = cli(env, "show", "beta")
    assert history.exit_code == 0 and "override" in history.stdout


def _report(env: dict[str, str], bodies: list[dict[str, Any]]) -> None:
    """Report runs straight through the ledger service, as a worker's reports would land."""
    from cleanday.config import Settings
    from cleanday.ledger import RunReport
    from cleanday.service.app import build_service

    service = build_service(Settings(**env))  # type: ignore[arg-type]
    try:
        for body in bodies:
            service.report_run(RunReport.model_validate(body))
    finally:
        service.engine.dispose()


def _report_clean_days(env: dict[str, str], name: str, days: int) -> None:
    start = datetime(2026, 10, 25, 9, 0, tzinfo=UTC)
    _report(
        env,
        [run_report(name, f"{name}-{i}", start + timedelta(days=i)) for i in range(1, days + 1)],
    )


def test_the_ledger_shows_the_last_gate_failure_with_its_date_and_reason(
    env: dict[str, str], behaviors_dir: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    cli(env, "register", str(behaviors_dir))
    cli(env, "override", "alpha", "--reason", "trusted by hand", "--tier", "C")
    time_machine.move_to(datetime(2026, 10, 27, 9, 0, tzinfo=UTC), tick=False)
    reason = "tag 'misc' is not in the vocabulary"
    failed = run_report(
        "alpha", "alpha-bad", datetime(2026, 10, 26, 22, 0, tzinfo=UTC), outcome="blocked",
        gates=[{"name": "schema", "passed": False, "reason": reason}],
    )  # fmt: skip
    _report(env, [failed])
    row = {r["name"]: r for r in ledger_json(env)}["alpha"]
    assert row["tier"] == "B" and row["clean_days"] == 0
    assert row["last_gate_failure"] == "2026-10-26"
    assert "not in the vocabulary" in row["last_failure_reason"]
    table = cli(env, "ledger").stdout
    assert "2026-10-26" in table and "not in the vocabulary" in table
    history = cli(env, "show", "alpha").stdout
    assert "demoted" in history and "alpha-bad" in history


def test_registering_a_directory_goes_past_a_bad_file_and_exits_non_zero(
    env: dict[str, str], behaviors_dir: Path
) -> None:
    (behaviors_dir / "gamma.yaml").write_text(work_order("gamma", key="KEY_ALPHA"))
    result = cli(env, "register", str(behaviors_dir))
    assert result.exit_code == 1
    assert "gamma" in result.output and "Traceback" not in result.output
    assert [r["name"] for r in ledger_json(env)] == ["alpha", "beta"]


def test_review_decide_then_close_promotes_only_after_sunday(
    env: dict[str, str], behaviors_dir: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    cli(env, "register", str(behaviors_dir))
    time_machine.move_to(datetime(2026, 11, 8, 10, 0, tzinfo=UTC), tick=False)  # Sunday
    _report_clean_days(env, "alpha", 13)
    shown = cli(env, "review")
    assert shown.exit_code == 0 and "alpha" in shown.stdout and "beta" not in shown.stdout
    decided = cli(env, "review", "--decide", "alpha=promote")
    assert decided.exit_code == 0, decided.output
    bad = cli(env, "review", "--decide", "alpha=maybe")
    assert bad.exit_code != 0 and "promote" in bad.output
    weekday = cli(env, "review", "close", "--week", "2026-11-09")
    assert weekday.exit_code != 0 and "Sunday" in weekday.output
    assert {r["name"]: r["tier"] for r in ledger_json(env)}["alpha"] == "A"
    time_machine.move_to(datetime(2026, 11, 9, 0, 5, tzinfo=UTC), tick=False)
    closed = cli(env, "review", "close", "--week", "2026-11-08")
    assert closed.exit_code == 0, closed.output
    assert {r["name"]: r["tier"] for r in ledger_json(env)}["alpha"] == "B"


def test_review_decide_on_the_saturday_before_is_refused_and_nothing_is_promoted(
    env: dict[str, str], behaviors_dir: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    cli(env, "register", str(behaviors_dir))
    time_machine.move_to(datetime(2026, 11, 7, 20, 0, tzinfo=UTC), tick=False)  # Saturday
    _report_clean_days(env, "alpha", 13)
    decided = cli(env, "review", "--decide", "alpha=promote")
    assert decided.exit_code == 1 and "recorded" not in decided.stdout
    assert "only during the Sunday of its review" in decided.stderr
    assert "Next review: Sunday 2026-11-08 at 08:00 (UTC)" in decided.stderr
    time_machine.move_to(datetime(2026, 11, 9, 0, 5, tzinfo=UTC), tick=False)
    closed = cli(env, "review", "close", "--week", "2026-11-08")
    assert closed.exit_code == 0 and "promoted: none" in closed.stdout
    assert {r["name"]: r["tier"] for r in ledger_json(env)}["alpha"] == "A"


def test_review_decide_records_each_decision_it_can_and_reports_each_it_cannot(
    env: dict[str, str], behaviors_dir: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    cli(env, "register", str(behaviors_dir))
    time_machine.move_to(datetime(2026, 11, 8, 10, 0, tzinfo=UTC), tick=False)  # Sunday
    _report_clean_days(env, "alpha", 13)
    decided = cli(
        env, "review", "--decide", "beta=hold", "--decide", "alpha=promote",
        "--decide", "gamma=hold", "--by", "ana",
    )  # fmt: skip
    assert decided.exit_code == 1
    assert "alpha: promote recorded for the review of 2026-11-08" in decided.stdout
    assert "beta is not a candidate" in decided.stderr and "in that review" in decided.stderr
    assert "gamma" in decided.stderr
    shown = json.loads(cli(env, "review", "--json").stdout)
    assert shown["week"] == "2026-11-08"
    assert [c["name"] for c in shown["candidates"]] == ["alpha"]
    (decision,) = shown["decisions"]
    assert (decision["behavior"], decision["decision"], decision["by"], decision["door"]) == (
        "alpha", "promote", "ana", "cli"
    )  # fmt: skip
    assert decision["decided_at"].startswith("2026-11-08T10:00") and decision["stands"]
    history = cli(env, "show", "alpha").stdout
    assert "decision=promote" in history and "by=ana" in history and "door=cli" in history


def test_show_lists_a_notion_decision_superseded_by_a_later_cli_one(
    env: dict[str, str], behaviors_dir: Path, engine: Any, time_machine: Any
) -> None:
    from cleanday.domain import Decision, Policy
    from cleanday.ledger import LedgerService

    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    cli(env, "register", str(behaviors_dir))
    time_machine.move_to(datetime(2026, 11, 8, 10, 0, tzinfo=UTC), tick=False)  # Sunday
    _report_clean_days(env, "alpha", 13)
    assert cli(env, "review", "--decide", "alpha=hold", "--by", "ana").exit_code == 0
    time_machine.move_to(datetime(2026, 11, 8, 10, 5, tzinfo=UTC), tick=False)
    notion_edit = datetime(2026, 11, 8, 9, 58, tzinfo=UTC)  # read back after the CLI's
    LedgerService(engine, Policy(timezone="UTC")).decide(
        "alpha", date(2026, 11, 8), Decision.PROMOTE, by="bo", door="notion",
        decided_at=notion_edit,
    )  # fmt: skip
    decisions = [
        line for line in cli(env, "show", "alpha").stdout.splitlines() if "decision=" in line
    ]
    assert len(decisions) == 2
    assert "by=ana" in decisions[0] and "door=cli" in decisions[0]
    assert "by=bo" in decisions[1] and "door=notion" in decisions[1]
    assert "superseded_by=hold by ana (cli)" in decisions[1]
    shown = json.loads(cli(env, "review", "--json").stdout)["decisions"]
    assert [(d["door"], d["stands"]) for d in shown] == [("cli", True), ("notion", False)]
    time_machine.move_to(datetime(2026, 11, 9, 0, 5, tzinfo=UTC), tick=False)
    assert "promoted: none" in cli(env, "review", "close", "--week", "2026-11-08").stdout


def test_close_day_by_hand_is_idempotent(
    env: dict[str, str], behaviors_dir: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    cli(env, "register", str(behaviors_dir))
    time_machine.move_to(datetime(2026, 10, 28, 0, 5, tzinfo=UTC), tick=False)
    _report_clean_days(env, "alpha", 2)
    for _ in range(2):
        result = cli(env, "ledger", "close-day", "--date", "2026-10-27")
        assert result.exit_code == 0, result.output
    assert {r["name"]: r["clean_days"] for r in ledger_json(env)}["alpha"] == 2
    bad = cli(env, "ledger", "close-day", "--date", "27/10/2026")
    assert bad.exit_code != 0 and "YYYY-MM-DD" in bad.output


def test_verify_passes_then_fails_naming_an_edited_entry(
    env: dict[str, str], behaviors_dir: Path, engine: Any
) -> None:
    cli(env, "register", str(behaviors_dir))
    ok = cli(env, "ledger", "verify")
    assert ok.exit_code == 0, ok.output
    with engine.begin() as conn:
        entry = conn.execute(
            text("SELECT seq, key FROM ledger_entries ORDER BY seq DESC LIMIT 1")
        ).one()
        conn.execute(
            text("UPDATE ledger_entries SET key = key || '-edited' WHERE seq = :seq"),
            {"seq": entry.seq},
        )
    bad = cli(env, "ledger", "verify")
    assert bad.exit_code != 0
    assert f"seq {entry.seq}" in bad.output or entry.key in bad.output
    assert "Traceback" not in bad.output


def test_rebuild_reports_no_difference_on_a_healthy_ledger(
    env: dict[str, str], behaviors_dir: Path
) -> None:
    cli(env, "register", str(behaviors_dir))
    result = cli(env, "ledger", "rebuild")
    assert result.exit_code == 0, result.output


def test_replay_under_a_looser_policy_makes_a_candidate_sooner(
    env: dict[str, str], behaviors_dir: Path, tmp_path: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    cli(env, "register", str(behaviors_dir))
    time_machine.move_to(datetime(2026, 10, 30, 9, 0, tzinfo=UTC), tick=False)
    _report_clean_days(env, "alpha", 4)
    loose = tmp_path / "loose.yaml"
    loose.write_text("timezone: UTC\nclean_day_threshold: 3\n")
    replay = cli(env, "ledger", "replay", "--policy", str(loose), "--json")
    assert replay.exit_code == 0, replay.output
    rows = {r["name"]: r for r in json.loads(replay.stdout)}
    assert rows["alpha"]["candidate"] is True and rows["beta"]["candidate"] is False
    assert set(rows["alpha"]) == EXPECTED_KEYS | {"changes"}
    # what would change against today, not only the states
    assert rows["alpha"]["changes"] == {"candidate": {"today": False, "policy": True}}
    assert rows["beta"]["changes"] == {}
    shown = cli(env, "ledger", "replay", "--policy", str(loose))
    assert shown.exit_code == 0, shown.output
    assert "1 of 2 behaviors would differ from today" in shown.stdout
    assert re.search(r"alpha\s+candidate\s+no\s+yes", shown.stdout), shown.stdout
    same = tmp_path / "same.yaml"
    same.write_text("timezone: UTC\n")
    unchanged = cli(env, "ledger", "replay", "--policy", str(same))
    assert "no behavior would differ from today" in unchanged.stdout, unchanged.stdout
    # replay is a backtest: the ledger itself is untouched
    assert {r["name"]: r["candidate"] for r in ledger_json(env)}["alpha"] is False
    missing = cli(env, "ledger", "replay", "--policy", str(tmp_path / "nope.yaml"))
    assert missing.exit_code != 0 and "nope.yaml" in missing.output


def test_an_unreachable_database_is_one_line_naming_it_without_the_password(
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": "postgresql+psycopg://ops:hunter2@127.0.0.1:9/ledger"}
    result = cli(env, "ledger")
    assert result.exit_code == 1
    assert "DATABASE_URL" in result.output and "127.0.0.1:9" in result.output
    assert "hunter2" not in result.output and "Traceback" not in result.output


def test_batch_list_approve_reject_and_release_sign_off_without_temporal(
    env: dict[str, str], behaviors_dir: Path, time_machine: Any
) -> None:
    time_machine.move_to(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), tick=False)
    env = env | {"TEMPORAL_ADDRESS": "127.0.0.1:9"}  # nothing listens: the runs are not told
    cli(env, "register", str(behaviors_dir))
    now = datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
    _report(env, [run_report("alpha", f"a-{i}", now, outcome="proposed") for i in (1, 2, 3)])
    listed = cli(env, "batch", "list", "alpha")
    assert listed.exit_code == 0 and all(f"a-{i}" in listed.stdout for i in (1, 2, 3))

    approved = cli(env, "batch", "approve", "alpha", "a-1")
    assert approved.exit_code == 0, approved.output
    assert "approved a-1" in approved.stdout
    assert "could not tell the runs now" in approved.stderr  # the runs' own check finds it
    rejected = cli(env, "batch", "reject", "alpha", "--reason", "off topic")  # the rest
    assert rejected.exit_code == 0 and "rejected a-2, a-3" in rejected.stdout
    assert "nothing awaits sign-off" in cli(env, "batch", "list", "alpha").stdout
    every = cli(env, "batch", "list", "alpha", "--all").stdout
    assert "approved" in every and "rejected" in every
    assert "override" in cli(env, "show", "alpha").stdout  # a rejection is an override

    again = cli(env, "batch", "approve", "alpha", "a-1")
    assert again.exit_code == 1 and "already approved" in again.stderr
    unknown = cli(env, "release", "alpha", "nope")
    assert unknown.exit_code == 1 and "no staged item 'nope'" in unknown.stderr

    cli(env, "override", "alpha", "--reason", "ready to prepare", "--tier", "B")
    _report(env, [run_report("alpha", "b-1", now + timedelta(minutes=5), outcome="staged")])
    released = cli(env, "release", "alpha", "b-1")
    assert released.exit_code == 0 and "released b-1" in released.stdout


def test_migrate_upgrades_the_ledger_database_to_head_and_says_so_then_changes_nothing(
    env: dict[str, str], engine: Any
) -> None:
    from alembic import command

    from cleanday.db import alembic_config, current_revision, head_revision, write_connection

    with write_connection(engine) as conn:  # as a database left by an older cleanday
        command.downgrade(alembic_config(conn), "0003_listing")
    upgraded = cli(env, "migrate")
    assert upgraded.exit_code == 0, upgraded.output
    head = head_revision()
    assert f"upgraded from 0003_listing to revision {head}" in upgraded.stdout
    assert current_revision(engine) == head
    again = cli(env, "migrate")
    assert again.exit_code == 0, again.output
    assert f"at revision {head} already; nothing to do" in again.stdout


def test_migrate_creates_the_ledger_in_an_empty_data_dir(tmp_path: Path) -> None:
    from cleanday.db import head_revision

    data = tmp_path / "fresh"
    result = cli({"CLEANDAY_DATA_DIR": str(data), "DATABASE_URL": ""}, "migrate")
    assert result.exit_code == 0, result.output
    assert f"upgraded from empty to revision {head_revision()}" in result.stdout
    assert (data / "ledger.db").is_file()


def test_version_starts_without_the_settings_or_the_database_stack() -> None:
    # issue 11 wants read verbs under 0.3 s: every verb module is imported at start-up, so a
    # heavy import at the top of one would slow every verb
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cleanday.cli import app\n"
        "assert CliRunner().invoke(app, ['version']).exit_code == 0\n"
        "heavy = {'sqlalchemy', 'pydantic_settings', 'fastapi', 'alembic', 'temporalio'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_retire_releases_the_key_hides_it_from_ledger_unless_all_and_revive_brings_it_back(
    env: dict[str, str], behaviors_dir: Path, tmp_path: Path
) -> None:
    cli(env, "register", str(behaviors_dir))
    retired = cli(env, "retire", "alpha", "--reason", "replaced")
    assert retired.exit_code == 0, retired.output
    assert "alpha: retired; its key env:KEY_ALPHA is released for reuse" in retired.stdout
    assert "register --revive PATH" in retired.stdout
    assert [r["name"] for r in ledger_json(env)] == ["beta"]
    every = cli(env, "ledger", "--all", "--json")
    assert {r["name"]: r["status"] for r in json.loads(every.stdout)} == {
        "alpha": "retired",
        "beta": "active",
    }
    again = cli(env, "register", str(behaviors_dir / "alpha.yaml"))
    assert again.exit_code == 1
    assert "alpha is retired" in again.output and "cleanday register --revive PATH" in again.output
    revived = cli(env, "register", "--revive", str(behaviors_dir / "alpha.yaml"))
    assert revived.exit_code == 0, revived.output
    assert "alpha: revived at tier A" in revived.stdout
    row = {r["name"]: r for r in ledger_json(env)}["alpha"]
    assert (row["tier"], row["status"], row["clean_days"]) == ("A", "active", 0)
    shown = cli(env, "show", "alpha")
    assert "key_released" in shown.stdout and "revived" in shown.stdout
    assert cli(env, "ledger", "verify").exit_code == 0
