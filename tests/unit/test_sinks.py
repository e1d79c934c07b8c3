from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cleanday.errors import SinkError
from cleanday.sinks import FileSink, action_id
from cleanday.steps import Action


def test_write_lands_under_the_behaviors_sink_directory(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    ref = sink.act("content_pipeline", Action("publish", "posts/a.md", {"content": "hello\n"}))
    path = tmp_path / "sinks" / "content_pipeline" / "posts" / "a.md"
    assert ref == str(path)
    assert path.read_text() == "hello\n"
    # the temp file of the atomic write is gone
    assert [p.name for p in path.parent.iterdir()] == ["a.md"]


def test_a_payload_without_content_is_written_as_json(tmp_path: Path) -> None:
    ref = FileSink(tmp_path).act("tag_audit", Action("write", "t.json", {"tags": ["x"]}))
    assert Path(ref).read_text() == '{\n  "tags": [\n    "x"\n  ]\n}\n'


def test_a_retried_write_does_not_act_twice(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    action = Action("publish", "posts/a.md", {"content": "v1", "action_id": "run-1:0"})
    first = sink.act("content_pipeline", action)
    # something else changed the file since; a retry of the same action must not overwrite it
    Path(first).write_text("edited by the operator")
    assert sink.act("content_pipeline", action) == first
    assert Path(first).read_text() == "edited by the operator"


def test_append_log_is_idempotent_by_event_id(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    a = Action("append_log", "events.log", {"event_id": "evt-1", "at": "T1", "line": "one"})
    b = Action("append_log", "events.log", {"event_id": "evt-2", "at": "T2", "line": "two"})
    ref = sink.act("webhook_logger", a)
    sink.act("webhook_logger", a)
    sink.act("webhook_logger", b)
    log = tmp_path / "sinks" / "webhook_logger" / "events.log"
    assert ref == f"{log}#evt-1"
    assert log.read_text() == "T1 [evt-1] one\nT2 [evt-2] two\n"


def test_append_after_a_crash_before_the_receipt_does_not_duplicate(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    a = Action("append_log", "events.log", {"event_id": "evt-9", "at": "T", "line": "x"})
    sink.act("webhook_logger", a)
    receipts = tmp_path / "sinks" / "webhook_logger" / ".receipts"
    for r in receipts.iterdir():
        r.unlink()  # as if the worker died between the append and the receipt
    sink.act("webhook_logger", a)
    assert (tmp_path / "sinks" / "webhook_logger" / "events.log").read_text() == "T [evt-9] x\n"


def test_an_event_id_inside_another_lines_text_is_not_mistaken_for_it(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    sink.act("webhook_logger", Action("append_log", "e.log", {"event_id": "e1", "line": "[e2] x"}))
    sink.act("webhook_logger", Action("append_log", "e.log", {"event_id": "e2", "line": "y"}))
    text = (tmp_path / "sinks" / "webhook_logger" / "e.log").read_text()
    assert text.splitlines() == ["- [e1] [e2] x", "- [e2] y"]


def test_concurrent_appends_of_one_event_write_one_line(tmp_path: Path) -> None:
    a = Action("append_log", "events.log", {"event_id": "evt-c", "line": "once"})
    threads = [
        threading.Thread(target=FileSink(tmp_path).act, args=("webhook_logger", a))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = tmp_path / "sinks" / "webhook_logger" / "events.log"
    assert log.read_text().count("[evt-c]") == 1


def test_action_id_is_stable_for_the_same_action_and_differs_otherwise() -> None:
    a = Action("write", "x", {"content": "1"})
    assert action_id(a) == action_id(Action("write", "x", {"content": "1"}))
    assert action_id(a) != action_id(Action("write", "x", {"content": "2"}))
    assert action_id(Action("write", "x", {"action_id": "given"})) == "given"


@pytest.mark.parametrize("target", ["../escape.md", "/etc/passwd", "", ".receipts/x"])
def test_targets_outside_the_sink_directory_are_refused(tmp_path: Path, target: str) -> None:
    with pytest.raises(SinkError, match="relative path inside"):
        FileSink(tmp_path).act("content_pipeline", Action("write", target, {"content": "x"}))
