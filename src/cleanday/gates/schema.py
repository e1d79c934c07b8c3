"""The schema gate: structured output validates against the Work Order's declared schema.

The schema is the Work Order's `output_schema` (JSON Schema; `enum` gives a fixed vocabulary),
or a pydantic model named in options as `model: "module:Class"`. Options may also declare a
vocabulary directly: `vocabulary: [..]` with `vocabulary_field` (a dotted path to a list or a
string in the output, default "tags"). A value outside a vocabulary fails with a reason naming it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from cleanday.gates.base import GateCheck, Output, Verdict
from cleanday.gates.loading import load_entry
from cleanday.workorder import WorkOrder

NAME = "schema"


def parse_output(output: Output) -> Any:
    """The output as JSON data; a string is parsed (a ```json fence around it is tolerated)."""
    if not isinstance(output, str):
        return output
    text = output.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text.removeprefix("json").strip()
    return json.loads(text)


def _where(path: Sequence[Any]) -> str:
    return "/".join(str(p) for p in path) or "(root)"


def _describe(error: ValidationError) -> str:
    where = _where(list(error.absolute_path))
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{where}: {error.instance!r} is outside the allowed vocabulary ({allowed})"
    return f"{where}: {error.message}"


def validate_json_schema(data: Any, schema: dict[str, Any]) -> list[str]:
    """Every violation of `schema` by `data`, one sentence each, in a stable order."""
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [_describe(e) for e in errors]


def _pluck(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def check_vocabulary(data: Any, vocabulary: Sequence[str], field: str) -> list[str]:
    """Every value under `field` (a string or a list of strings) outside `vocabulary`."""
    allowed = set(vocabulary)
    found = _pluck(data, field)
    values: list[Any] = []
    if isinstance(found, str):
        values = [found]
    elif isinstance(found, list):
        values = found
    bad: list[str] = []
    for v in values:
        if v not in allowed and repr(v) not in bad:
            bad.append(repr(v))
    return [
        f"{field}: {b} is outside the allowed vocabulary ({', '.join(vocabulary)})" for b in bad
    ]


def check(c: GateCheck, work_order: WorkOrder) -> Verdict:
    if c.result is None:
        return Verdict(True, "no output to validate (the run did not finish)", c.output)
    model_ref = c.options.get("model")
    vocabulary = c.options.get("vocabulary")
    schema = work_order.output_schema
    if schema is None and model_ref is None and vocabulary is None:
        return Verdict(
            False,
            f"{work_order.name} declares the schema gate but no output_schema, "
            "options.model or options.vocabulary to validate against",
            c.output,
        )
    try:
        data = parse_output(c.output)
    except (json.JSONDecodeError, ValueError) as exc:
        return Verdict(False, f"output is not valid JSON: {exc}", c.output)
    problems: list[str] = []
    if schema is not None:
        try:
            problems += validate_json_schema(data, schema)
        except SchemaError as exc:
            return Verdict(False, f"output_schema is not a valid JSON Schema: {exc.message}")
    if model_ref is not None:
        try:
            model = load_entry(str(model_ref))
        except Exception as exc:
            return Verdict(False, f"schema gate: cannot load model {model_ref}: {exc}", c.output)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return Verdict(False, f"schema gate: {model_ref} is not a pydantic model", c.output)
        try:
            model.model_validate(data)
        except PydanticValidationError as exc:
            for err in exc.errors():
                problems.append(f"{_where(err['loc'])}: {err['msg']}")
    if vocabulary is not None:
        field = str(c.options.get("vocabulary_field", "tags"))
        problems += check_vocabulary(data, [str(v) for v in vocabulary], field)
    if problems:
        return Verdict(False, "; ".join(problems), c.output)
    return Verdict(True, "output matches the declared schema", c.output)
