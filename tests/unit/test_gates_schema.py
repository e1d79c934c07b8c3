from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cleanday.gates import GateContext, evaluate
from cleanday.steps import StepResult
from tests.unit.fakes import builtin_work_order, completion, work_order

TAG_SCHEMA = {
    "type": "object",
    "required": ["tags"],
    "properties": {"tags": {"type": "array", "items": {"enum": ["python", "testing"]}}},
}


class Report(BaseModel):
    title: str
    words: int


def schema_gate(output: Any, **wo: Any) -> Any:
    step = StepResult(output=output, summary="", completions=[completion()])
    report = evaluate(work_order(**wo), step, GateContext())
    return next(r for r in report.results if r.name == "schema")


def test_output_matching_the_json_schema_passes() -> None:
    gate = schema_gate('{"tags": ["python"]}', gates=[{"name": "schema"}], output_schema=TAG_SCHEMA)
    assert gate.passed


def test_a_tag_outside_the_vocabulary_fails_and_the_reason_names_the_tag() -> None:
    gate = schema_gate(
        {"tags": ["python", "gardening"]}, gates=[{"name": "schema"}], output_schema=TAG_SCHEMA
    )
    assert not gate.passed
    assert gate.reason == (
        "tags/1: 'gardening' is outside the allowed vocabulary (python, testing)"
    )


def test_output_that_is_not_json_fails_with_the_parse_error() -> None:
    gate = schema_gate("Sure! Here are tags:", gates=[{"name": "schema"}], output_schema=TAG_SCHEMA)
    assert not gate.passed and gate.reason.startswith("output is not valid JSON")


def test_a_json_fence_around_the_answer_is_tolerated() -> None:
    gate = schema_gate(
        '```json\n{"tags": ["testing"]}\n```', gates=[{"name": "schema"}], output_schema=TAG_SCHEMA
    )
    assert gate.passed


def test_missing_required_field_fails_naming_it() -> None:
    gate = schema_gate({}, gates=[{"name": "schema"}], output_schema=TAG_SCHEMA)
    assert not gate.passed and "'tags' is a required property" in gate.reason


def test_a_pydantic_model_named_in_options_validates_the_output() -> None:
    gates = [{"name": "schema", "options": {"model": f"{__name__}:Report"}}]
    assert schema_gate({"title": "t", "words": 3}, gates=gates).passed
    bad = schema_gate({"title": "t", "words": "many"}, gates=gates)
    assert not bad.passed and bad.reason.startswith("words:")


def test_a_model_option_that_is_not_a_pydantic_model_fails() -> None:
    gates = [{"name": "schema", "options": {"model": f"{__name__}:TAG_SCHEMA"}}]
    gate = schema_gate({}, gates=gates)
    assert not gate.passed and "is not a pydantic model" in gate.reason


def test_a_vocabulary_in_options_checks_the_named_field() -> None:
    gates = [{"name": "schema", "options": {"vocabulary": ["a", "b"], "vocabulary_field": "x.t"}}]
    assert schema_gate({"x": {"t": ["a", "b"]}}, gates=gates).passed
    gate = schema_gate({"x": {"t": ["a", "zz"]}}, gates=gates)
    assert not gate.passed and gate.reason == "x.t: 'zz' is outside the allowed vocabulary (a, b)"


def test_schema_gate_without_a_schema_fails_and_says_what_to_declare() -> None:
    gate = schema_gate({}, gates=[{"name": "schema"}])
    assert not gate.passed and "no output_schema" in gate.reason


def test_tag_audit_work_order_refuses_an_off_vocabulary_tag() -> None:
    wo = builtin_work_order("tag_audit")
    bad = {"posts": [{"id": "p1", "tags": ["python", "celebrity-gossip"]}]}
    report = evaluate(wo, StepResult(bad, "", completions=[completion()]), GateContext())
    gate = next(r for r in report.results if r.name == "schema")
    assert report.blocked
    assert "'celebrity-gossip' is outside the allowed vocabulary" in gate.reason
