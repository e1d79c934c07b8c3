"""Pure routing rules: Retry-After, model metadata, guardrail checks, tier parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from cleanday.domain import Tier
from cleanday.errors import ConfigError, PolicyViolation
from cleanday.presets import PresetVersion, check_tightening, content_hash
from cleanday.router.call import Route
from cleanday.router.config import ModelInfo, RouterConfig, load_router_config
from cleanday.router.core import _retry_after
from cleanday.router.guardrails import check_routes, effective_guardrails
from cleanday.secrets import Redactor
from cleanday.workorder import Guardrails, PresetSpec


def test_retry_after_in_seconds_or_http_date_is_read_in_full_never_capped() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert _retry_after("7", 1.0, now) == 7.0
    assert _retry_after(None, 1.5, now) == 1.5
    # the wait asked for, whatever its length: the router decides whether the call can wait
    assert _retry_after("3600", 1.0, now) == 3600.0
    soon = format_datetime(now + timedelta(seconds=20), usegmt=True)
    assert _retry_after(soon, 1.0, now) == 20.0
    assert _retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), 1.0, now) == 0
    assert _retry_after("not a date", 2.0, now) == 2.0
    assert _retry_after("inf", 2.0, now) == 2.0


def test_model_metadata_exact_name_beats_a_glob() -> None:
    config = RouterConfig(
        models={
            "anthropic/*": ModelInfo(input_per_mtok=3, output_per_mtok=15),
            "anthropic/deep-thinker": ModelInfo(timeout_class="reasoning", anthropic_id="dt-1"),
        }
    )
    assert config.model_info("anthropic/small").input_per_mtok == 3
    assert config.model_info("anthropic/deep-thinker").timeout_class == "reasoning"
    assert config.model_info("openai/x") == ModelInfo()
    assert config.anthropic_model("anthropic/deep-thinker") == "dt-1"
    assert config.anthropic_model("anthropic/small") == "small"
    assert config.anthropic_model("openai/x") is None


def test_router_config_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "router.yaml"
    bad.write_text("models: {a: {input_per_mtok: -1}}\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_router_config(bad)
    good = tmp_path / "ok.yaml"
    good.write_text(
        "timeouts: {fast: 10, reasoning: 90}\npolicies: {strict: {require_zdr: true}}\n"
    )
    config = load_router_config(good)
    assert config.timeouts["reasoning"] == 90
    assert config.policies["strict"].require_zdr


def _route(transport: str, *models: str, **provider: object) -> Route:
    return Route(transport, models[0], tuple(models), dict(provider))


def test_blocked_fallback_model_is_a_violation_not_a_skip() -> None:
    guard = Guardrails(blocked_models=("openai/*",))
    routes = [_route("openrouter", "anthropic/a", "openai/b")]
    with pytest.raises(PolicyViolation, match="openai/b"):
        check_routes("tagger", routes, guard, RouterConfig(), {})


def test_preset_provider_list_outside_allowed_providers_is_a_violation() -> None:
    guard = Guardrails(allowed_providers=("anthropic",))
    routes = [_route("openrouter", "anthropic/a", only=["anthropic", "deepinfra"])]
    with pytest.raises(PolicyViolation, match=r"provider\.only"):
        check_routes("tagger", routes, guard, RouterConfig(), {})


def test_local_transport_is_exempt_from_provider_and_retention_rules() -> None:
    guard = Guardrails(allowed_providers=("anthropic",), require_zdr=True)
    check_routes("tagger", [_route("local", "local/model")], guard, RouterConfig(), {})


def test_zdr_direct_anthropic_is_allowed_once_configured() -> None:
    guard = Guardrails(require_zdr=True)
    routes = [_route("anthropic", "anthropic/a")]
    with pytest.raises(PolicyViolation):
        check_routes("tagger", routes, guard, RouterConfig(), {})
    check_routes("tagger", routes, guard, RouterConfig(anthropic_zdr=True), {})


def test_image_route_may_name_transport_and_model() -> None:
    guard = Guardrails(image_route="openrouter:img/model")
    params = {"modalities": ["image"]}
    check_routes("art", [_route("openrouter", "img/model")], guard, RouterConfig(), params)
    with pytest.raises(PolicyViolation, match="image"):
        check_routes("art", [_route("openrouter", "img/other")], guard, RouterConfig(), params)


def test_behavior_guardrails_override_the_shared_policy_field_by_field() -> None:
    config = RouterConfig(
        policies={"house": Guardrails(allowed_providers=("anthropic",), require_zdr=True)}
    )
    merged = effective_guardrails({"policy": "house", "blocked_models": ["x/*"]}, config)
    assert merged.allowed_providers == ("anthropic",)
    assert merged.require_zdr and merged.blocked_models == ("x/*",)
    with pytest.raises(ConfigError, match="'nope' is not defined"):
        effective_guardrails({"policy": "nope"}, config)


def test_content_hash_changes_with_any_field_and_tightening_is_enforced() -> None:
    a = PresetSpec(name="p", model="m", parameters={"temperature": 0.5})
    b = PresetSpec(name="p", model="m", parameters={"temperature": 0.6})
    assert content_hash(a) != content_hash(b)
    assert content_hash(a) == content_hash(
        PresetSpec(name="p", model="m", parameters={"temperature": 0.5})
    )
    check_tightening(
        PresetSpec(
            name="p", model="m", parameters={"max_tokens": 100}, tiers={Tier.C: {"max_tokens": 50}}
        )
    )
    with pytest.raises(ConfigError, match="max_tokens"):
        check_tightening(
            PresetSpec(
                name="p",
                model="m",
                parameters={"max_tokens": 100},
                tiers={Tier.B: {"max_tokens": 500}},
            )
        )


def test_parameters_for_a_tier_include_every_lower_tier_override() -> None:
    spec = PresetSpec(
        name="p",
        model="m",
        parameters={"temperature": 0.8, "max_tokens": 400},
        tiers={Tier.B: {"temperature": 0.5}, Tier.WINGS: {"max_tokens": 100}},
    )
    v = PresetVersion("p", 1, content_hash(spec), spec, "registered", datetime.now(UTC))
    assert v.parameters_for(Tier.A) == {"temperature": 0.8, "max_tokens": 400}
    assert v.parameters_for(Tier.C) == {"temperature": 0.5, "max_tokens": 400}
    assert v.parameters_for(Tier.WINGS) == {"temperature": 0.5, "max_tokens": 100}


def test_redactor_strikes_every_resolved_secret() -> None:
    redact = Redactor()
    redact.add("test-canary-one")
    redact.add("test-canary-two")
    assert redact("a test-canary-one b test-canary-two") == "a [redacted] b [redacted]"
