"""Sinks: where a behavior's act step lands — a local file tree by default.

    sink: Sink = FileSink(settings.data_dir)
    reference = sink.act("webhook_logger", action)   # str, e.g. a file path (#event id)

`act` is idempotent by action id: `action.payload["action_id"]` (or `event_id` for append_log)
when given, else a hash of the action's kind, target and payload. An activity that retries
`act` after a crash never writes twice. FileSink layout under `data_dir/sinks/<behavior>/`:
- `append_log`: appends `<at> [<event id>] <line>` to the file `target` (payload: `line` or
  `event`, optional `at`, "-" when absent); an event id already in the file is not appended again;
- any other kind (write, publish, stage, propose, ...): writes `target` atomically (temp file +
  rename) with `payload["content"]` (text) or the payload as JSON;
- `.receipts/<action id>` remembers what each action returned.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from cleanday.errors import SinkError
from cleanday.steps import Action

APPEND_LOG = "append_log"
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")
_LOG_LINE = re.compile(r"^\S+ \[([^\]\s]+)\] ")


def logged_event_id(line: str) -> str | None:
    """The event id of one append_log line, or None for a line of another shape."""
    m = _LOG_LINE.match(line)
    return m.group(1) if m else None


class Sink(Protocol):
    def act(self, behavior: str, action: Action) -> str:
        """Perform `action` for `behavior` once; return a reference to what it produced."""
        ...


def action_id(action: Action) -> str:
    """The identity that makes a retried act a no-op."""
    for key in ("action_id", "event_id"):
        given = action.payload.get(key)
        if given:
            return str(given)
    canonical = json.dumps(
        {"kind": action.kind, "target": action.target, "payload": action.payload},
        sort_keys=True,
        default=str,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _atomic_write(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FileSink:
    """Acts by writing files under `data_dir/sinks/<behavior>/` (the embedded default)."""

    def __init__(self, data_dir: Path | str) -> None:
        self.root = Path(data_dir) / "sinks"

    def behavior_dir(self, behavior: str) -> Path:
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,62}", behavior):
            raise SinkError(f"behavior name {behavior!r} is not a valid behavior name")
        return self.root / behavior

    def _target(self, behavior: str, target: str) -> Path:
        base = self.behavior_dir(behavior)
        rel = Path(target)
        if not target or rel.is_absolute() or ".." in rel.parts or rel.parts[0].startswith("."):
            raise SinkError(
                f"{behavior}: action target {target!r} must be a relative path inside the "
                "behavior's sink directory (no '..', not absolute, not hidden)"
            )
        return base / rel

    def _receipt(self, behavior: str, aid: str) -> Path:
        return self.behavior_dir(behavior) / ".receipts" / _SAFE_ID.sub("_", aid)

    def act(self, behavior: str, action: Action) -> str:
        path = self._target(behavior, action.target)
        aid = action_id(action)
        receipt = self._receipt(behavior, aid)
        if receipt.exists():
            return receipt.read_text(encoding="utf-8")
        if action.kind == APPEND_LOG:
            reference = self._append(path, aid, action.payload)
        else:
            reference = self._write(path, action.payload)
        _atomic_write(receipt, reference)
        return reference

    def _write(self, path: Path, payload: dict[str, Any]) -> str:
        content = payload.get("content")
        if not isinstance(content, str):
            body = {k: v for k, v in payload.items() if k != "action_id"}
            content = json.dumps(body, indent=2, sort_keys=True, default=str) + "\n"
        _atomic_write(path, content)
        return str(path)

    def _append(self, path: Path, event_id: str, payload: dict[str, Any]) -> str:
        if re.search(r"[\s\[\]]", event_id):
            raise SinkError(f"event id {event_id!r} must not contain spaces or brackets")
        line = payload.get("line")
        if line is None:
            line = json.dumps(payload.get("event", payload), sort_keys=True, default=str)
        # The time field is never empty, so a line's first bracket is always its event id.
        at = re.sub(r"\s+", "_", str(payload.get("at") or "")) or "-"
        entry = f"{at} [{event_id}] {' '.join(str(line).splitlines())}\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        # The lock makes "is it there? then append" one step for every process sharing the file;
        # the scan is what keeps a retry after a crash between append and receipt from doubling.
        with open(path, "a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.seek(0)
                if not any(logged_event_id(existing) == event_id for existing in f):
                    f.write(entry)
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return f"{path}#{event_id}"
