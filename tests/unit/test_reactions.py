"""The reactions to the ledger's notices, without a database: what each says, and that the
ledger itself names no channel."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import cleanday.ledger
from cleanday.domain import LastFailure, Tier
from cleanday.notices import (
    Candidate,
    Demoted,
    FailedGate,
    GateFailed,
    ItemsSignedOff,
    Quarantined,
    ReviewOpened,
    SignedItem,
)
from cleanday.reactions import HANDLERS, Context, slack

NOW = datetime(2026, 11, 9, 12, tzinfo=UTC)
CTX = Context(None, NOW)  # type: ignore[arg-type]  # these reactions never touch the database
# Sunday's weekly lines read the week's runs (tests/integration/test_slack_sunday.py)
READS_THE_LEDGER = {slack.weekly_lines}


def _react(notice: Any) -> list[tuple[str, str, str]]:
    return [
        (m.channel, m.kind, m.dedupe_key)
        for react in HANDLERS[type(notice)]
        if react not in READS_THE_LEDGER
        for m in react(notice, CTX)
    ]


def test_no_channel_is_named_inside_the_ledger_package() -> None:
    channels = {"slack", "notion", "temporal", "openrouter"}
    package = Path(cleanday.ledger.__file__).parent
    for path in package.glob("*.py"):
        text = path.read_text()
        for channel in channels:  # not even in a comment: the ledger says what, never where
            assert channel not in text.lower(), f"{path.name} mentions {channel}"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value.lower() not in channels, f"{path.name} names {node.value!r}"
                assert "channel" not in node.value.lower(), f"{path.name}: {node.value!r}"


def test_a_gate_failure_is_one_alert_per_run_and_one_row_per_gate() -> None:
    gates = (FailedGate("schema", "bad tag"), FailedGate("policy", "model not allowed"))
    failed = GateFailed("tagger", NOW, "r1", "wf-r1", Tier.A, gates, demoted_to=None)
    assert _react(failed) == [
        ("notion", "gate_failure_row", "gate_failure:tagger:r1:schema"),
        ("notion", "gate_failure_row", "gate_failure:tagger:r1:policy"),
        ("slack", "gate_failure_alert", "gate_alert:tagger:r1"),
    ]


def test_a_gate_failure_that_demoted_is_alerted_by_the_demotion_alone() -> None:
    gates = (FailedGate("schema", "bad tag"),)
    failed = GateFailed("tagger", NOW, "r1", "wf-r1", Tier.C, gates, demoted_to=Tier.B)
    assert [kind for _, kind, _ in _react(failed)] == ["gate_failure_row"]
    key = "tier:2026-11-09T12:00:00.000000Z:C>B"
    demoted = Demoted("tagger", NOW, key, Tier.C, Tier.B, "gate", "schema", "bad tag", "r1", "wf")
    assert slack.demotion_alert in HANDLERS[Demoted]
    [alert] = slack.demotion_alert(demoted, CTX)
    assert alert.dedupe_key == f"demotion:tagger:{key}"
    assert alert.payload == {
        "behavior": "tagger", "at": NOW.isoformat(), "from": "C", "to": "B", "cause": "gate",
        "gate": "schema", "reason": "bad tag", "run_id": "r1", "workflow_id": "wf",
    }  # fmt: skip


def test_a_quarantine_notice_says_the_schedule_waits_for_the_operator() -> None:
    last = LastFailure(on=date(2026, 11, 9), gate="schema", reason="bad tag", run_id="r3")
    [(_, kind, key)] = _react(Quarantined("tagger", NOW, "3 gate failures in 7 days", last))
    assert (kind, key) == ("quarantine_notice", "quarantine:tagger:2026-11-09T12:00:00.000000Z")
    [notice] = HANDLERS[Quarantined][0](Quarantined("tagger", NOW, "3 failures", last), CTX)
    assert notice.payload["reason"].endswith("schedule paused until the operator resumes it")
    assert notice.payload["last_failure"]["run_id"] == "r3"


def test_the_sunday_review_is_a_row_per_candidate_and_one_summary() -> None:
    opened = ReviewOpened(None, NOW, date(2026, 11, 22), (Candidate("tagger", Tier.B, 7),))
    assert _react(opened) == [
        ("notion", "review_row", "review_row:2026-11-22:tagger"),
        ("slack", "review_summary", "review_summary:2026-11-22"),
    ]
    [row] = HANDLERS[ReviewOpened][0](opened, CTX)
    assert (row.payload["from_tier"], row.payload["to_tier"]) == ("B", "C")


def test_a_sign_off_wakes_each_run_once_whatever_the_door() -> None:
    items = (SignedItem("a", "run-1"), SignedItem("b", "run-1"), SignedItem("c", "run-2"))
    signed = ItemsSignedOff("tagger", NOW, "rejected", items, "notion:ops", "off topic")
    messages = [m for r in HANDLERS[ItemsSignedOff] for m in r(signed, CTX)]
    assert [(m.channel, m.payload["workflow_id"]) for m in messages] == [
        ("temporal", "run-1"),
        ("temporal", "run-2"),
    ]
    assert messages[0].payload["action"] == "rejected"
    assert messages[0].payload["reason"] == "off topic"
