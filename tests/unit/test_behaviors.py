from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import behaviors.content_pipeline as content_pipeline
import behaviors.model_roll_call as model_roll_call
import behaviors.morning_digest as morning_digest
import behaviors.tag_audit as tag_audit
import behaviors.webhook_logger as webhook_logger
import pytest
import yaml

from cleanday.domain import Tier
from cleanday.errors import ConfigError
from cleanday.gates import GateContext, evaluate
from cleanday.gates.loading import load_entry
from cleanday.sinks import FileSink
from cleanday.workorder import WorkOrder
from tests.unit.fakes import BEHAVIORS, FakeModel, builtin_work_order, step_context

BUILTINS = ["morning_digest", "webhook_logger", "tag_audit", "content_pipeline", "model_roll_call"]


def scripted(name: str) -> list[str]:
    scripts = yaml.safe_load((BEHAVIORS / "local_scripts.yaml").read_text())
    return list(scripts[name]["answers"])


# the Work Orders


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_work_order_is_valid_and_names_its_own_step_code(name: str) -> None:
    wo = WorkOrder.model_validate(yaml.safe_load((BEHAVIORS / f"{name}.yaml").read_text()))
    assert wo.name == name
    assert callable(load_entry(wo.entry))
    assert wo.transports.order == ("local",)


def test_every_builtin_has_its_own_key_reference() -> None:
    refs = [builtin_work_order(n).key.ref for n in BUILTINS]
    assert len(set(refs)) == len(refs)
    assert all(r == f"env:CLEANDAY_KEY_{n.upper()}" for r, n in zip(refs, BUILTINS, strict=True))


def test_every_builtin_has_scripted_answers_for_the_local_provider() -> None:
    scripts = yaml.safe_load((BEHAVIORS / "local_scripts.yaml").read_text())
    assert set(BUILTINS) <= set(scripts)
    assert all(
        scripts[n]["answers"] and all(isinstance(a, str) for a in scripts[n]["answers"])
        for n in BUILTINS
    )


def test_model_names_live_in_work_orders_and_config_not_in_step_code() -> None:
    models = set()
    for n in BUILTINS:
        wo = builtin_work_order(n)
        models |= {wo.preset.model, *wo.preset.fallback_models}
    for n in BUILTINS:
        code = (BEHAVIORS / f"{n}.py").read_text()
        assert not [m for m in models if m in code], n


async def _run_scripted(name: str, tier: Tier, tmp_path: Path, **kw: Any) -> Any:
    """Run a built-in's step on its scripted answers, then its gates, as the runtime would."""
    wo = builtin_work_order(name)
    model = FakeModel(scripted(name) * 2, model=wo.preset.model)
    entry = load_entry(wo.entry)
    ctx = step_context(
        model, behavior=name, tier=tier, config=dict(wo.config), data_dir=tmp_path, **kw
    )
    result = await entry(ctx)
    return wo, model, result, evaluate(wo, result, GateContext(input=ctx.input))


@pytest.mark.parametrize("name", BUILTINS)
async def test_scripted_answers_pass_every_gate(name: str, tmp_path: Path) -> None:
    kw: dict[str, Any] = (
        {"input": {"event_id": "evt-1", "kind": "push"}} if name == ("webhook_logger") else {}
    )
    _, _, _, report = await _run_scripted(name, Tier.C, tmp_path, **kw)
    assert not report.blocked, report.failed


# morning_digest


@pytest.fixture(scope="module")
def json_api() -> Iterator[str]:
    """A tiny local JSON API, as the morning digest would pull every morning."""
    items = {"items": [{"title": f"Story {i}", "summary": f"Detail {i}"} for i in range(1, 13)]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/news":
                self.send_error(404)
                return
            body = json.dumps(items).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_morning_digest_pulls_the_api_and_summarises_through_the_model(
    json_api: str, tmp_path: Path
) -> None:
    model = FakeModel(["Twelve stories; ten covered."])
    ctx = step_context(model, tier=Tier.C, config={"url": f"{json_api}/news", "max_items": 10})
    result = await morning_digest.run(ctx)
    [(messages, _)] = model.calls
    prompt = messages[0]["content"]
    assert "Story 1: Detail 1" in prompt and "Story 10" in prompt and "Story 11" not in prompt
    assert result.output == "Twelve stories; ten covered."
    assert result.summary == "1 digest written from 10 items."
    [action] = result.actions
    assert action.target == "digests/2026-11-21.md"
    assert action.payload["content"].startswith("# Morning digest 2026-11-21\n\nTwelve stories")
    ref = FileSink(tmp_path).act("morning_digest", action)
    assert "Sources (10)" in Path(ref).read_text()


async def test_morning_digest_reports_what_its_tier_makes_true(json_api: str) -> None:
    summaries = []
    for tier in (Tier.A, Tier.B, Tier.WINGS):
        ctx = step_context(FakeModel(["ok"]), tier=tier, config={"url": f"{json_api}/news"})
        summaries.append((await morning_digest.run(ctx)).summary)
    assert summaries == [
        "Proposal: morning digest for 2026-11-21 from 10 items.",
        "Morning digest for 2026-11-21 staged from 10 items, waiting for release.",
        "1 digest written from 10 items.",
    ]


async def test_morning_digest_fails_loudly_when_the_api_answers_an_error(json_api: str) -> None:
    ctx = step_context(FakeModel([]), config={"url": f"{json_api}/missing"})
    with pytest.raises(Exception, match="404"):
        await morning_digest.run(ctx)


async def test_morning_digest_without_a_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"config\.url"):
        await morning_digest.run(step_context(FakeModel([])))


# webhook_logger


async def test_webhook_logger_appends_each_event_once_as_a_timestamped_line(
    tmp_path: Path,
) -> None:
    sink = FileSink(tmp_path)
    now = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    for eid in ("evt-1", "evt-2", "evt-1"):  # evt-1 delivered twice: logged once
        ctx = step_context(
            FakeModel([]), input={"event_id": eid, "kind": "push"}, now=now, run_id=f"r-{eid}"
        )
        result = await webhook_logger.run(ctx)
        for action in result.actions:
            sink.act("webhook_logger", action)
    lines = (tmp_path / "sinks" / "webhook_logger" / "events.log").read_text().splitlines()
    assert lines == [
        '2026-11-21T09:30:00+00:00 [evt-1] {"event_id":"evt-1","kind":"push"}',
        '2026-11-21T09:30:00+00:00 [evt-2] {"event_id":"evt-2","kind":"push"}',
    ]


async def test_webhook_logger_labels_the_event_through_the_model_when_configured() -> None:
    model = FakeModel(["push received"])
    ctx = step_context(model, input={"id": "abc"}, config={"describe": True})
    result = await webhook_logger.run(ctx)
    assert result.output == 'push received {"id":"abc"}'
    assert result.summary == "1 event logged (abc)."
    assert len(result.completions) == 1


async def test_webhook_logger_without_an_event_id_uses_the_run_id() -> None:
    ctx = step_context(FakeModel([]), input={"kind": "ping"}, run_id="wf-7")
    assert (await webhook_logger.run(ctx)).actions[0].payload["event_id"] == "wf-7"


# tag_audit


async def test_tag_audit_asks_for_strict_json_in_its_vocabulary(tmp_path: Path) -> None:
    _, model, result, report = await _run_scripted("tag_audit", Tier.C, tmp_path)
    [(_, response_format)] = model.calls
    assert response_format is not None and response_format["json_schema"]["strict"] is True
    enum = response_format["json_schema"]["schema"]["properties"]["posts"]["items"]["properties"][
        "tags"
    ]["items"]["enum"]
    assert enum == builtin_work_order("tag_audit").config["vocabulary"]
    assert result.output["posts"][0] == {"id": "p1", "tags": ["python", "operations"]}
    assert result.summary == "3 posts tagged."
    assert not report.blocked


async def test_tag_audit_answer_with_an_off_vocabulary_tag_fails_the_schema_gate() -> None:
    wo = builtin_work_order("tag_audit")
    answer = '{"posts": [{"id": "p1", "tags": ["python", "crypto"]}]}'
    result = await tag_audit.run(step_context(FakeModel([answer]), config=dict(wo.config)))
    report = evaluate(wo, result, GateContext())
    schema = next(r for r in report.results if r.name == "schema")
    assert report.blocked
    assert "'crypto' is outside the allowed vocabulary" in schema.reason


async def test_tag_audit_passes_a_non_json_answer_on_for_the_schema_gate_to_refuse() -> None:
    wo = builtin_work_order("tag_audit")
    result = await tag_audit.run(
        step_context(FakeModel(["python, testing"]), config=dict(wo.config))
    )
    assert result.output == "python, testing"
    report = evaluate(wo, result, GateContext())
    assert report.blocked
    assert "not valid JSON" in next(r for r in report.results if r.name == "schema").reason


# content_pipeline


async def test_content_pipeline_drafts_then_reviews_with_two_model_calls() -> None:
    model = FakeModel(["# Draft title\nrough text", "# Final title\nclean text"])
    ctx = step_context(model, config={"topics": ["trust"]})
    result = await content_pipeline.run(ctx)
    assert len(model.calls) == 2
    assert "trust" in model.calls[0][0][0]["content"]
    assert "rough text" in model.calls[1][0][0]["content"]
    assert result.output == "# Final title\nclean text"
    [action] = result.actions
    assert (action.kind, action.target) == ("publish", "posts/2026-11-21-final-title.md")
    assert len(result.completions) == 2


@pytest.mark.parametrize(
    ("tier", "summary"),
    [
        (Tier.A, "1 post proposed: 'Final title'."),
        (Tier.B, "1 post staged, waiting for release: 'Final title'."),
        (Tier.C, "1 post published."),
        (Tier.WINGS, "1 post published."),
    ],
)
async def test_content_pipeline_summary_makes_its_tier_plain(tier: Tier, summary: str) -> None:
    model = FakeModel(["draft", "Final title\nbody"])
    result = await content_pipeline.run(step_context(model, tier=tier, config={"topics": ["x"]}))
    assert result.summary == summary


async def test_content_pipeline_input_topic_overrides_the_configured_ones() -> None:
    model = FakeModel(["d", "r"])
    await content_pipeline.run(
        step_context(model, input={"topic": "gates"}, config={"topics": ["other"]})
    )
    assert "on: gates." in model.calls[0][0][0]["content"]


# model_roll_call


def truth_table(tmp_path: Path) -> Path:
    path = tmp_path / "truth.yaml"
    path.write_text(
        "models:\n"
        "  vendor/current-1: {status: current}\n"
        "  vendor/old-1: {status: deprecated, replacement: vendor/current-1}\n"
        "  vendor/gone-1: {status: retired}\n"
    )
    return path


async def test_model_roll_call_reports_no_changes_when_every_model_is_current(
    tmp_path: Path,
) -> None:
    config = {"models": ["vendor/current-1"], "truth_table": str(truth_table(tmp_path))}
    result = await model_roll_call.run(step_context(FakeModel(["present"]), config=config))
    assert result.summary == "No changes."
    assert result.output["differences"] == []
    assert json.loads(result.actions[0].payload["content"])["report"] == "No changes."
    assert result.actions[0].target == "roll_call/2026-11-21-am.json"


async def test_model_roll_call_reports_each_difference(tmp_path: Path) -> None:
    config = {
        "models": ["vendor/current-1", "vendor/old-1", "vendor/gone-1", "vendor/new-2"],
        "truth_table": str(truth_table(tmp_path)),
    }
    evening = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    result = await model_roll_call.run(
        step_context(FakeModel(["present"]), config=config, now=evening)
    )
    assert result.output["differences"] == [
        "vendor/old-1: deprecated; use vendor/current-1",
        "vendor/gone-1: retired",
        "vendor/new-2: not in the truth table",
    ]
    assert result.summary.startswith("3 differences: vendor/old-1: deprecated")
    assert result.actions[0].target == "roll_call/2026-11-21-pm.json"


async def test_model_roll_call_output_passes_its_pydantic_schema_gate(tmp_path: Path) -> None:
    _, _, result, report = await _run_scripted("model_roll_call", Tier.C, tmp_path)
    assert result.summary == "No changes."
    assert next(r for r in report.results if r.name == "schema").passed


async def test_model_roll_call_with_a_missing_truth_table_is_a_config_error(
    tmp_path: Path,
) -> None:
    config = {"models": ["m"], "truth_table": str(tmp_path / "nope.yaml")}
    with pytest.raises(ConfigError, match="cannot read truth table"):
        await model_roll_call.run(step_context(FakeModel(["present"]), config=config))
