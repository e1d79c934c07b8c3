"""A behavior's step code that raises with a secret in the text: the secret goes nowhere."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cleanday.domain import Tier
from tests.temporal.harness import TOKEN, Stack, work_order
from tests.temporal.leaky_steps import KEY_ENV

pytestmark = pytest.mark.temporal

CANARY = "sk-or-canary-step-4f9b2e71d0"


async def test_a_secret_in_a_step_exception_reaches_no_history_log_ledger_or_error(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, CANARY)
    await stack.register(
        work_order(
            "leaky",
            key={"ref": f"env:{KEY_ENV}", "cap_usd": 5},
            entry=("tests.temporal.leaky_steps:run"),
        ),
        tier=Tier.C,
    )
    # the service token is a configured secret too (CLEANDAY_TOKEN)
    handle = await stack.start("leaky", {"token": TOKEN})
    state = await handle.result()

    assert state.outcome == "failed" and not state.acted
    failure = next(g for g in state.gates if g.name == "failure")
    assert not failure.passed
    assert "calling upstream with key=[redacted] token=[redacted] failed" in failure.reason
    history = (await handle.fetch_history()).to_json()
    assert "calling upstream with key=[redacted]" in history  # the failure itself is kept
    for secret in (CANARY, TOKEN):
        assert secret not in repr(state)
        assert secret not in history
        assert secret not in caplog.text
        for path in Path(stack.data_dir).rglob("*"):  # the ledger database and its WAL
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
