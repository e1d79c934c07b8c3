"""Sign-off you can see: a proposal (A) or staged item (B) carries the step's summary, output
and each action with its content, as redacted by the sensitive-info gate; `cleanday batch
list` prints them readably, `--json` whole, and the items API returns them."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from cleanday.cli import app as cli_app
from cleanday.domain import Tier
from tests.temporal.harness import Stack, work_order

pytestmark = pytest.mark.temporal

EMAIL = "jane.doe@example.com"


async def test_a_proposal_carries_its_redacted_actions_and_batch_list_shows_them(
    stack: Stack, ledger: FastAPI
) -> None:
    raw = work_order("drafts", gates=[{"name": "sensitive_info", "mode": "redact"}])
    await stack.register(raw)
    handle = await stack.start("drafts", {"topic": "rivers", "leak": True})
    await stack.wait_for(handle, "batch approval")

    item = await stack.ledger.item("drafts", handle.id)
    payload = item["payload"]
    assert payload["summary"] == "1 note drafted."
    [action] = payload["actions"]
    assert action["kind"] == "write" and action["target"] == f"{handle.id}.txt"
    content = action["payload"]["content"]
    assert content and EMAIL not in content and EMAIL not in json.dumps(payload)

    env = {"DATABASE_URL": str(ledger.state.service.engine.url)}
    runner = CliRunner()
    shown = await asyncio.to_thread(runner.invoke, cli_app, ["batch", "list", "drafts"], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{handle.id}: 1 note drafted." in shown.output
    assert f"1. write -> {handle.id}.txt" in shown.output
    assert f"content: {content[:40]}" in shown.output and EMAIL not in shown.output
    whole = await asyncio.to_thread(
        runner.invoke, cli_app, ["batch", "list", "drafts", "--json"], env=env
    )
    assert whole.exit_code == 0, whole.output
    [row] = json.loads(whole.stdout)
    assert row["item_id"] == handle.id and row["payload"] == payload


async def test_a_staged_item_at_b_carries_the_same(stack: Stack) -> None:
    await stack.register(work_order("staged_notes"), tier=Tier.B)
    handle = await stack.start("staged_notes", {"topic": "lakes"})
    await stack.wait_for(handle, "release")
    item = await stack.ledger.item("staged_notes", handle.id)
    assert item["kind"] == "staged"
    assert item["payload"]["actions"][0]["payload"]["content"]
    assert item["payload"]["output"] == item["payload"]["actions"][0]["payload"]["content"]
