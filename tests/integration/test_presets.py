# ruff: noqa: F401, F811
"""Preset versions: every change a version, history, restore, tiers, promotion and demotion."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from cleanday.cli import app
from cleanday.config import get_settings
from cleanday.domain import Tier
from cleanday.errors import ConfigError, UnknownBehaviorError
from cleanday.presets import PresetStore
from cleanday.workorder import PresetSpec
from tests.fakes.router_fixtures import routing_engine, sqlite_engine, work_order


def spec(**changes: object) -> PresetSpec:
    base: dict[str, object] = {
        "name": "seo_audit",
        "system_prompt": "Be brief.",
        "model": "anthropic/test-model-a",
        "parameters": {"temperature": 0.7, "max_tokens": 300},
    }
    return PresetSpec.model_validate({**base, **changes})


def test_every_change_is_a_new_version_and_an_unchanged_preset_is_not(
    routing_engine: Engine,
) -> None:
    store = PresetStore(routing_engine)
    v1 = store.record("seo_audit", spec())
    assert store.record("seo_audit", spec()).version == v1.version == 1
    v2 = store.record("seo_audit", spec(system_prompt="Be briefer."))
    assert v2.version == 2 and v2.content_hash != v1.content_hash
    assert [v.version for v in store.history("seo_audit")] == [1, 2]
    assert store.current("seo_audit").spec.system_prompt == "Be briefer."


def test_restore_makes_a_new_version_equal_to_the_old_one(routing_engine: Engine) -> None:
    store = PresetStore(routing_engine)
    store.record("seo_audit", spec())
    store.record("seo_audit", spec(model="anthropic/test-model-b"))
    restored = store.restore("seo_audit", 1)
    assert restored.version == 3
    assert restored.content_hash == store.get("seo_audit", 1).content_hash
    assert restored.source == "restored v1"
    assert len(store.history("seo_audit")) == 3
    with pytest.raises(UnknownBehaviorError, match="no preset version 9"):
        store.restore("seo_audit", 9)


def test_tier_overrides_apply_cumulatively_and_may_only_tighten(sqlite_engine: Engine) -> None:
    store = PresetStore(sqlite_engine)
    v = store.record("seo_audit", spec(tiers={"B": {"max_tokens": 200}, "C": {"temperature": 0.2}}))
    assert v.parameters_for(Tier.A) == {"temperature": 0.7, "max_tokens": 300}
    assert v.parameters_for(Tier.B) == {"temperature": 0.7, "max_tokens": 200}
    assert v.parameters_for(Tier.WINGS) == {"temperature": 0.2, "max_tokens": 200}
    with pytest.raises(ConfigError, match="may only tighten"):
        store.record("seo_audit", spec(tiers={"C": {"temperature": 1.2}}))


def test_demotion_restores_the_last_version_clean_at_the_lower_tier(
    routing_engine: Engine,
) -> None:
    store = PresetStore(routing_engine)
    store.record("seo_audit", spec())  # v1
    store.publish_for_tier("seo_audit", Tier.A, reason="registration")
    store.record("seo_audit", spec(system_prompt="v2 prompt"))  # v2, runs clean at A
    store.publish_for_tier("seo_audit", Tier.B)  # promoted A -> B with v2
    store.record("seo_audit", spec(system_prompt="v3 prompt"))  # v3, runs clean at B
    store.publish_for_tier("seo_audit", Tier.C)  # promoted B -> C with v3
    store.record("seo_audit", spec(system_prompt="v4 prompt, risky"))  # v4 fails at C
    back = store.restore_for_demotion("seo_audit", Tier.B)
    assert back.spec.system_prompt == "v3 prompt"
    assert back.version == 5 and back.source == "restored v3"
    # a second failure at B goes back to what was clean at A
    again = store.restore_for_demotion("seo_audit", Tier.A)
    assert again.spec.system_prompt == "v2 prompt"


def test_demotion_keeps_the_current_version_when_it_is_the_clean_one(
    sqlite_engine: Engine,
) -> None:
    store = PresetStore(sqlite_engine)
    store.record("seo_audit", spec())
    store.publish_for_tier("seo_audit", Tier.B)
    store.publish_for_tier("seo_audit", Tier.C)
    back = store.restore_for_demotion("seo_audit", Tier.B)
    assert back.version == 1
    assert len(store.history("seo_audit")) == 1


def test_keys_command_lists_spend_cap_share_and_projection(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cleanday.budget import SpendStore
    from cleanday.config import Settings
    from cleanday.router import Router
    from cleanday.secrets import SecretResolver

    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    get_settings.cache_clear()
    router = Router(
        Settings(), SpendStore(sqlite_engine), PresetStore(sqlite_engine), SecretResolver(env={})
    )
    router.bind_local(work_order())
    reservation = router.spend.reserve("seo_audit", 0.25)
    router.spend.settle(reservation, 0.25)
    out = CliRunner().invoke(app, ["keys"])
    assert out.exit_code == 0, out.output
    row = out.output.strip().splitlines()[1]
    assert row.split()[:2] == ["seo_audit", "env:KEY_SEO_AUDIT"]
    assert row.split()[5:8] == ["$0.25", "$1.00", "25%"]
    get_settings.cache_clear()
