"""Structured logs: JSON when asked, secrets struck out, the run ID on every line about a run."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from cleanday.config import Settings
from cleanday.logs import about_run, configure

TOKEN = "tok-canary-5b1e-operator"


@pytest.fixture
def json_lines() -> Iterator[Any]:
    out = io.StringIO()
    handler = configure(Settings(CLEANDAY_TOKEN=TOKEN, CLEANDAY_LOG_FORMAT="json"), stream=out)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.getvalue().splitlines()]

    try:
        yield lines
    finally:
        logging.getLogger().removeHandler(handler)


def test_a_json_line_has_time_level_logger_and_message(json_lines: Any) -> None:
    logging.getLogger("cleanday.test").warning("day %s closed", "2026-11-20")
    (line,) = json_lines()
    assert line["level"] == "WARNING"
    assert line["logger"] == "cleanday.test"
    assert line["message"] == "day 2026-11-20 closed"
    assert line["ts"].endswith("+00:00")
    assert "run_id" not in line


def test_the_configured_token_and_bearer_credentials_are_redacted(json_lines: Any) -> None:
    log = logging.getLogger("cleanday.test")
    log.info("calling with token %s", TOKEN)
    log.info("header was Authorization: Bearer sk-or-v1-abcdef0123456789")
    try:
        raise RuntimeError(f"refused {TOKEN}")
    except RuntimeError:
        log.exception("it failed")
    out = json_lines()
    text = json.dumps(out)
    assert TOKEN not in text
    assert "sk-or-v1-abcdef0123456789" not in text
    assert out[0]["message"] == "calling with token [redacted]"
    assert "Bearer [redacted]" in out[1]["message"]
    assert "RuntimeError: refused [redacted]" in out[2]["exc"]


def test_lines_about_a_run_carry_its_id_and_others_do_not(json_lines: Any) -> None:
    log = logging.getLogger("cleanday.test")
    with about_run("seo_audit-2026-11-20"):
        log.info("report recorded")
    log.info("scheduler tick")
    log.info("permit granted", extra={"run_id": "notes-7"})
    out = json_lines()
    assert out[0]["run_id"] == "seo_audit-2026-11-20"
    assert "run_id" not in out[1]
    assert out[2]["run_id"] == "notes-7"


async def test_a_line_logged_inside_a_runs_activity_carries_the_runs_workflow_id(
    json_lines: Any,
) -> None:
    @activity.defn
    async def step() -> None:
        logging.getLogger("cleanday.worker").info("calling the model")

    env = ActivityEnvironment()
    env.info = env.info.__class__(**{**env.info.__dict__, "workflow_id": "notes-2026-11-20"})
    await env.run(step)
    (line,) = json_lines()
    assert line["run_id"] == "notes-2026-11-20"


def test_text_lines_name_the_run() -> None:
    out = io.StringIO()
    handler = configure(Settings(CLEANDAY_LOG_FORMAT="text"), stream=out)
    try:
        with about_run("r-1"):
            logging.getLogger("cleanday.test").info("hello")
    finally:
        logging.getLogger().removeHandler(handler)
    line = out.getvalue().strip()
    assert line.endswith("INFO cleanday.test [run r-1] hello")


def test_the_json_flag_overrides_the_setting() -> None:
    out = io.StringIO()
    handler = configure(Settings(CLEANDAY_LOG_FORMAT="text"), json_logs=True, stream=out)
    try:
        logging.getLogger("cleanday.test").info("hello")
    finally:
        logging.getLogger().removeHandler(handler)
    assert json.loads(out.getvalue())["message"] == "hello"
