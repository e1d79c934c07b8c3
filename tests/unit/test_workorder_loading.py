"""Loading Work Orders: every refusal names the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cleanday.errors import WorkOrderError
from cleanday.registration import load_work_order, parse_work_order

ENTRY = "tests.unit.test_workorder_loading:step"


async def step(ctx: Any) -> Any:
    return None


def _wo(**overrides: Any) -> dict[str, Any]:
    wo: dict[str, Any] = {
        "name": "seo_audit",
        "description": "audits pages",
        "trigger": {"type": "cron", "cron": "0 7 * * *", "timezone": "Europe/Berlin"},
        "reports": "pages audited",
        "key": {"ref": "env:OPENROUTER_KEY_SEO", "cap_usd": 5},
        "preset": {"name": "seo", "model": "local/echo"},
        "gates": [{"name": "budget"}, {"name": "sensitive_info", "mode": "redact"}],
        "entry": ENTRY,
    }
    wo.update(overrides)
    return wo


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seo_audit.yaml"
    path.write_text(text)
    return path


def _refusal(tmp_path: Path, **overrides: Any) -> WorkOrderError:
    path = _write(tmp_path, yaml.safe_dump(_wo(**overrides), sort_keys=False))
    with pytest.raises(WorkOrderError) as info:
        load_work_order(path)
    assert str(path) in str(info.value)
    return info.value


def test_a_valid_work_order_loads(tmp_path: Path) -> None:
    wo = load_work_order(_write(tmp_path, yaml.safe_dump(_wo())))
    assert wo.name == "seo_audit"
    assert wo.key.ref == "env:OPENROUTER_KEY_SEO"


def test_broken_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: seo_audit\ndescription: [unclosed\nreports: x\n")
    with pytest.raises(WorkOrderError, match=r"line \d+, column \d+: invalid YAML") as info:
        load_work_order(path)
    assert str(path) in str(info.value)


def test_a_bad_field_names_the_field_its_line_and_what_is_allowed(tmp_path: Path) -> None:
    preset = {"name": "seo", "model": "local/echo", "timeout_class": "slow"}
    err = _refusal(tmp_path, preset=preset)
    assert err.field == "preset.timeout_class"
    assert "'fast' or 'reasoning'" in str(err)
    assert "(line " in str(err)


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    err = _refusal(tmp_path, shedule="daily")
    assert err.field == "shedule"
    assert "unknown field" in str(err)


def test_a_missing_field_is_named(tmp_path: Path) -> None:
    wo = _wo()
    del wo["reports"]
    path = _write(tmp_path, yaml.safe_dump(wo))
    with pytest.raises(WorkOrderError, match="reports: required field is missing"):
        load_work_order(path)


def test_an_unknown_trigger_type_lists_the_allowed_ones(tmp_path: Path) -> None:
    err = _refusal(tmp_path, trigger={"type": "hourly"})
    assert "cron, interval, webhook" in str(err)


# Token-shaped strings are assembled at run time so that no file in the repository holds one.
_TOKENS = {
    "OpenRouter": "sk-" + "or-v1-" + "a1b2c3d4e5f6" * 4,
    "Anthropic": "sk-" + "ant-api03-" + "Zx9Yw8Vu7Ts6" * 3,
    "Slack": "xo" + "xb-" + "1234567890-abcdefghij",
    "Notion": "nt" + "n_" + "A1b2C3d4E5f6G7h8I9j0K1l2",
    "GitHub": "gh" + "p_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6",
    "AWS": "AK" + "IA" + "ABCDEFGHIJ234567",
    "bearer": "Bear" + "er " + "abcDEF123456ghiJKL789",
}


@pytest.mark.parametrize("kind", sorted(_TOKENS))
def test_a_literal_secret_anywhere_in_the_file_is_refused(tmp_path: Path, kind: str) -> None:
    token = _TOKENS[kind]
    err = _refusal(tmp_path, config={"notes": f"use {token} for now"})
    assert "literal secret" in str(err)
    assert "env:NAME" in str(err)
    assert token not in str(err)  # the message never echoes the secret


def test_a_high_entropy_key_ref_is_refused_as_a_secret(tmp_path: Path) -> None:
    blob = "Qm9" + "vX2xpdGVyYWxfc2VjcmV0X3ZhbHVlXzEyMzQ1Njc4"
    err = _refusal(tmp_path, key={"ref": f"env:{blob}", "cap_usd": 5})
    assert err.field == "key.ref"
    assert "not a literal secret" in str(err)


def test_an_env_var_name_is_a_valid_key_ref(tmp_path: Path) -> None:
    path = _write(tmp_path, yaml.safe_dump(_wo(key={"ref": "OPENROUTER_KEY_SEO", "cap_usd": 1})))
    assert load_work_order(path).key.ref == "OPENROUTER_KEY_SEO"


def test_an_unknown_gate_is_refused_with_the_built_ins(tmp_path: Path) -> None:
    err = _refusal(tmp_path, gates=[{"name": "budget"}, {"name": "vibes"}])
    assert err.field == "gates[1].name"
    assert "unknown gate 'vibes'" in str(err)
    assert "budget, failure, policy, schema, sensitive_info" in str(err)


def test_a_custom_gate_with_an_importable_entry_is_accepted(tmp_path: Path) -> None:
    gates = [{"name": "vibes", "entry": ENTRY}]
    path = _write(tmp_path, yaml.safe_dump(_wo(gates=gates)))
    assert load_work_order(path).gates[0].entry == ENTRY


def test_an_invalid_cron_is_refused(tmp_path: Path) -> None:
    err = _refusal(tmp_path, trigger={"type": "cron", "cron": "61 7 * * *"})
    assert err.field == "trigger.cron"
    assert "five fields" in str(err)


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    err = _refusal(
        tmp_path, trigger={"type": "cron", "cron": "0 7 * * *", "timezone": "Mars/Olympus"}
    )
    assert err.field == "trigger.timezone"
    assert "IANA" in str(err)


def test_an_entry_point_whose_module_cannot_be_imported_is_refused(tmp_path: Path) -> None:
    err = _refusal(tmp_path, entry="behaviors.does_not_exist:run")
    assert err.field == "entry"
    assert "not in the behaviors directory" in str(err)


def test_an_entry_point_whose_function_is_absent_is_refused(tmp_path: Path) -> None:
    err = _refusal(tmp_path, entry="tests.unit.test_workorder_loading:nope")
    assert "defines no function 'nope'" in str(err)


def test_parse_work_order_reads_yaml_text_from_an_api_body() -> None:
    wo = parse_work_order(yaml.safe_dump(_wo()), source="<api>")
    assert wo.entry == ENTRY
