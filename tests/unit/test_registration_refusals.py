"""Registration refuses more, all at once: each problem of a Work Order with its field and fix,
JSON Schemas that are not, schema gates with nothing to check, YAML bombs, data files."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cleanday.bounded_yaml import YamlTooLarge, load
from cleanday.cli import app
from cleanday.errors import WorkOrderError, WorkOrderErrors
from cleanday.registration import looks_like_secret, not_a_work_order, parse_work_order

ENTRY = "tests.unit.test_registration_refusals:step"
REPO = Path(__file__).resolve().parents[2]


async def step(ctx: Any) -> Any:
    return None


def _wo(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tagger",
        "description": "tags things",
        "trigger": {"type": "interval", "every_seconds": 60},
        "reports": "the tags it set",
        "key": {"ref": "env:KEY_TAGGER", "cap_usd": 1},
        "preset": {"name": "tagger", "model": "local/echo"},
        "entry": ENTRY,
    }
    return data | over


def _refused(**over: Any) -> WorkOrderError:
    with pytest.raises(WorkOrderError) as info:
        parse_work_order(yaml.safe_dump(_wo(**over)), "behaviors/tagger.yaml")
    return info.value


def test_an_output_schema_that_is_not_json_schema_is_refused_with_where_and_how() -> None:
    err = _refused(output_schema={"type": "objekt"})
    assert err.field == "output_schema"
    assert "not a valid JSON Schema at type" in str(err)
    assert "json-schema.org" in str(err)


def test_a_valid_output_schema_is_accepted() -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array"}}}
    wo = parse_work_order(yaml.safe_dump(_wo(output_schema=schema, gates=[{"name": "schema"}])))
    assert wo.output_schema == schema


def test_a_schema_gate_with_nothing_to_check_against_is_refused() -> None:
    err = _refused(gates=[{"name": "budget"}, {"name": "schema"}])
    assert err.field == "gates[1]"
    assert "nothing to check against" in str(err)
    assert "output_schema" in str(err) and "options.vocabulary" in str(err)
    ok = _wo(gates=[{"name": "schema", "options": {"vocabulary": ["a", "b"]}}])
    assert parse_work_order(yaml.safe_dump(ok)).gates[0].name == "schema"


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    err = _refused(
        key={"ref": "vault:keys/tagger", "cap_usd": 1},
        output_schema={"type": 12},
        gates=[{"name": "schema"}, {"name": "nonesuch"}],
        entry="tests.unit.nonesuch_module:run",
    )
    assert isinstance(err, WorkOrderErrors)
    fields = [e.field for e in err.errors]
    assert fields == ["key.ref", "output_schema", "gates[1].name", "entry"]
    text = str(err)
    assert text.startswith("behaviors/tagger.yaml: 4 problems:")
    assert "unknown secret scheme 'vault'" in text and "unknown gate 'nonesuch'" in text


def test_every_schema_error_is_reported_at_once_with_its_line() -> None:
    data = _wo()
    del data["reports"]
    data["key"] = {"ref": "env:KEY_TAGGER", "cap_usd": -1}
    data["colour"] = "blue"
    with pytest.raises(WorkOrderErrors) as info:
        parse_work_order(yaml.safe_dump(data, sort_keys=False), "x.yaml")
    fields = sorted(e.field or "" for e in info.value.errors)
    assert fields == ["colour", "key.cap_usd", "reports"]
    assert "(line " in str(info.value)


def test_schema_errors_come_with_the_reference_and_output_schema_problems() -> None:
    data = _wo(key={"ref": "vault:keys/tagger", "cap_usd": 1}, output_schema={"type": 12})
    del data["reports"]
    with pytest.raises(WorkOrderErrors) as info:
        parse_work_order(yaml.safe_dump(data), "x.yaml")
    assert [e.field for e in info.value.errors] == ["reports", "key.ref", "output_schema"]


@pytest.mark.parametrize(
    "name",
    ["OPENROUTER_API_KEY_PROD2", "ANTHROPIC_API_KEY_TEAM_2", "CLEANDAY_KEY_TAG_AUDIT_2026"],
)
def test_ordinary_variable_names_are_not_taken_for_literal_secrets(name: str) -> None:
    assert not looks_like_secret(name)
    assert parse_work_order(yaml.safe_dump(_wo(key={"ref": f"env:{name}", "cap_usd": 1})))


@pytest.mark.parametrize(
    "value", ["Zq3xT9vLm2Pw8RkY4nHs6JdA1bCe", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9_xX"]
)
def test_high_entropy_mixed_case_values_are_still_refused_as_literal_secrets(value: str) -> None:
    assert looks_like_secret(value)
    err = _refused(key={"ref": f"env:{value}", "cap_usd": 1})
    assert "not a literal secret" in str(err)
    assert value not in str(err)


BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
)


def test_a_one_kilobyte_alias_bomb_is_refused_fast_and_in_little_memory() -> None:
    assert len(BOMB) < 1024
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(WorkOrderError, match=r"expands to more than [\d,]+ values") as info:
        parse_work_order(BOMB, "bomb.yaml")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(info.value).startswith("bomb.yaml: ")
    # the expansion is 10**9 values; refusing it must not build any of them
    assert peak < 5_000_000, peak
    assert elapsed < 5, elapsed


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(YamlTooLarge):
        load("a: &a [1, *a]")


def test_an_oversized_document_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(YamlTooLarge, match="over the limit"):
        load("x: " + "y" * 300_000)


def test_modest_aliases_still_load() -> None:
    assert load("base: &b {a: 1}\none: *b\ntwo: *b\n") == {
        "base": {"a": 1},
        "one": {"a": 1},
        "two": {"a": 1},
    }


def test_the_shipped_data_files_are_told_apart_from_work_orders() -> None:
    behaviors = REPO / "behaviors"
    assert not_a_work_order((behaviors / "model_truth_table.yaml").read_text()) is not None
    assert not_a_work_order((behaviors / "local_scripts.yaml").read_text()) is not None
    assert not_a_work_order((behaviors / "tag_audit.yaml").read_text()) is None
    # a broken Work Order is still one: registering it says what is wrong
    assert not_a_work_order("name: x\nentry: [\n") is None


def test_register_of_the_shipped_directory_succeeds_and_names_what_it_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANDAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(app, ["register", "behaviors/"])
    assert result.exit_code == 0, result.output
    assert "model_truth_table.yaml: skipped, not a Work Order" in result.output
    assert "local_scripts.yaml: skipped, not a Work Order" in result.output
    assert "tag_audit: registered at tier A" in result.output


def test_an_unknown_override_kind_is_refused_with_the_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANDAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(REPO)
    runner = CliRunner()
    assert runner.invoke(app, ["register", "behaviors/tag_audit.yaml"]).exit_code == 0
    result = runner.invoke(app, ["override", "tag_audit", "--reason", "x", "--kind", "oops"])
    assert result.exit_code == 2
    assert "unknown override kind 'oops'" in result.output
    assert "let_through" in result.output
    shown = runner.invoke(app, ["show", "tag_audit", "--json"])
    assert '"override"' not in shown.output
    ok = runner.invoke(app, ["override", "tag_audit", "--reason", "x", "--kind", "rerun"])
    assert ok.exit_code == 0, ok.output
