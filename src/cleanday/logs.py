"""Structured logs: one configuration for every cleanday process, text for people or JSON (one
object a line) for a log pipeline, secrets struck out of every line, and the run ID on every
line about a run.

A line is about a run when it is logged inside one of the run's activities (the run ID is the
workflow ID, read from Temporal's activity context), inside `about_run(run_id)` (the service's
side of a run: its report, its permit), or with `extra={"run_id": ...}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from cleanday.config import Settings
from cleanday.secrets import REDACTED, Redactor, redact_secrets

_current_run: ContextVar[str | None] = ContextVar("cleanday_run_id", default=None)

# a credential in a header or URL that no resolver taught the process (a caller's own token)
_BEARER = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")


@contextlib.contextmanager
def about_run(run_id: str) -> Iterator[None]:
    """Every line logged inside (on this task or thread) carries `run_id`."""
    token = _current_run.set(run_id)
    try:
        yield
    finally:
        _current_run.reset(token)


def run_id_of(record: logging.LogRecord) -> str | None:
    """The run a log line is about, if any."""
    explicit = getattr(record, "run_id", None)
    if explicit:
        return str(explicit)
    bound = _current_run.get()
    if bound:
        return bound
    for extra in ("temporal_activity", "temporal_workflow"):
        details = getattr(record, extra, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            return str(details["workflow_id"])
    return _activity_run()


def _activity_run() -> str | None:
    from temporalio import activity

    if not activity.in_activity():
        return None
    return activity.info().workflow_id


def redact(text: str) -> str:
    """`text` without the secrets this process knows, nor any bearer credential."""
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", redact_secrets(text))


class RunAndRedact(logging.Filter):
    """Sets `record.run_id` and redacts the message (arguments merged) and the exception."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = run_id_of(record)
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class TextFormatter(logging.Formatter):
    """`time level logger [run <id>] message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        run = getattr(record, "run_id", None)
        if run:
            head, _, rest = line.partition(f" {record.name} ")
            line = f"{head} {record.name} [run {run}] {rest}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, run_id when about a run, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        run = getattr(record, "run_id", None)
        if run:
            out["run_id"] = run
        if record.exc_text:
            out["exc"] = record.exc_text
        elif record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def configure(
    settings: Settings, *, json_logs: bool | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """The root logger of this process, as the settings say (`json_logs` overrides
    CLEANDAY_LOG_FORMAT), to `stream` (stderr); the secrets the settings hold are taught to the
    redactor."""
    learn = Redactor()
    for value in (
        settings.token,
        settings.notion_token,
        settings.slack_token,
        settings.openrouter_management_key,
    ):
        if value:
            learn.add(value)
    as_json = settings.log_format == "json" if json_logs is None else json_logs
    handler = logging.StreamHandler(stream)
    handler.addFilter(RunAndRedact())
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_cleanday", False):
            root.removeHandler(old)
    handler._cleanday = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # httpx logs every request at INFO: three ledger calls and a model call per run would
    # bury a process's own lines and cost CPU on every run
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler
