# ruff: noqa: F401, F811
"""With OPENROUTER_MANAGEMENT_KEY: the behavior's own key, its preset published, @preset calls."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from cleanday.budget import SpendStore
from cleanday.config import Settings
from cleanday.domain import Policy, Tier
from cleanday.ledger import LedgerService
from cleanday.localprovider import ServerThread
from cleanday.outbox import OutboxDelivery
from cleanday.presets import PresetStore
from cleanday.reactions import presets
from cleanday.router import Router
from cleanday.router.tables import ROUTING_TABLES
from cleanday.runtime.wakeups import publish_presets
from cleanday.secrets import SecretResolver
from tests.fakes.openrouter import create_fake_openrouter
from tests.fakes.router_fixtures import CANARY, routing_engine, work_order

MANAGEMENT = "test-mgmt-canary-5d1e"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[ServerThread]:
    server = ServerThread(create_fake_openrouter(MANAGEMENT)).start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: ServerThread) -> Any:
    state = fake_server.config.app.state.fake
    state.reset()
    return state


@pytest.fixture
def router(routing_engine: Engine, fake_server: ServerThread, tmp_path: Path) -> Router:
    settings = Settings.model_validate(
        {
            "OPENROUTER_BASE_URL": fake_server.url + "/api/v1",
            "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT,
            "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
        }
    )
    return Router(
        settings,
        SpendStore(routing_engine),
        PresetStore(routing_engine),
        SecretResolver(env={"KEY_SEO_AUDIT": CANARY}),
    )


def _wo(**kw: Any) -> Any:
    return work_order(
        transports={"order": ["openrouter"]},
        preset={
            "name": "seo_audit",
            "system_prompt": "Be brief.",
            "model": "anthropic/test-model-a",
            "fallback_models": ["openai/test-model-b"],
            "parameters": {"temperature": 0.7},
            "tiers": {"C": {"temperature": 0.2}},
        },
        **kw,
    )


async def test_registration_provisions_a_limited_key_and_publishes_the_preset(
    router: Router, fake: Any, tmp_path: Path
) -> None:
    await router.bind(_wo())
    calls = [(r["method"], r["path"]) for r in fake.requests]
    assert calls == [
        ("POST", "/api/v1/keys"),
        ("POST", "/api/v1/presets/cleanday-seo-audit/chat/completions"),
    ]
    assert fake.requests[0]["body"] == {
        "name": "cleanday seo_audit",
        "limit": 1.0,
        "limit_reset": "monthly",
    }
    assert all(r["authorization"] == f"Bearer {MANAGEMENT}" for r in fake.requests)
    [version] = fake.presets["cleanday-seo-audit"]
    assert version["config"]["model"] == "anthropic/test-model-a"
    assert version["config"]["models"] == ["anthropic/test-model-a", "openai/test-model-b"]
    assert version["system_prompt"] == "Be brief."
    key_file = tmp_path / "data" / "keys" / "seo_audit.openrouter"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_calls_name_the_published_preset_with_the_behaviors_own_key(
    router: Router, fake: Any
) -> None:
    await router.bind(_wo())
    fake.requests.clear()
    done = await router.complete("seo_audit", Tier.A, [{"role": "user", "content": "hi"}])
    assert done.text == "fake openrouter answer"
    assert done.cost_usd == pytest.approx(0.0021)
    await router.complete("seo_audit", Tier.C, [{"role": "user", "content": "hi"}])
    call, at_c = fake.requests
    assert call["body"]["model"] == "@preset/cleanday-seo-audit"
    # the tier's parameters travel with the request, over the preset's
    assert (call["body"]["temperature"], at_c["body"]["temperature"]) == (0.7, 0.2)
    issued = call["authorization"].removeprefix("Bearer ")
    assert issued in fake.secrets and issued != CANARY


async def test_promotion_publishes_the_tier_version_and_a_new_cap_updates_the_key(
    router: Router, fake: Any
) -> None:
    await router.bind(_wo())
    await router.publish_for_tier("seo_audit", Tier.C)
    versions = fake.presets["cleanday-seo-audit"]
    assert [v["config"]["temperature"] for v in versions] == [0.7, 0.2]
    fake.requests.clear()
    await router.bind(_wo(key={"ref": "env:KEY_SEO_AUDIT", "cap_usd": 5.0, "cadence": "week"}))
    [patch] = fake.requests  # the preset did not change: nothing new to publish
    assert patch["method"] == "PATCH" and patch["path"].startswith("/api/v1/keys/")
    assert patch["body"] == {"limit": 5.0, "limit_reset": "weekly"}
    await router.restore_for_demotion("seo_audit", Tier.B)
    assert fake.presets["cleanday-seo-audit"][-1]["config"]["temperature"] == 0.7


async def test_binding_again_unchanged_makes_no_management_calls(router: Router, fake: Any) -> None:
    await router.bind(_wo())
    fake.requests.clear()
    await router.bind(_wo())
    assert fake.requests == []
    assert len(fake.keys) == 1 and len(fake.presets["cleanday-seo-audit"]) == 1


async def test_secrets_from_provisioning_stay_out_of_the_database_and_logs(
    router: Router, fake: Any, routing_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await router.bind(_wo())
    await router.complete("seo_audit", Tier.A, [{"role": "user", "content": "hi"}])
    issued = next(iter(fake.secrets))
    with routing_engine.connect() as conn:
        dump = " ".join(
            repr(tuple(row)) for t in ROUTING_TABLES for row in conn.execute(t.select())
        )
    for secret in (issued, MANAGEMENT, CANARY):
        assert secret not in dump
        assert secret not in caplog.text


async def test_fake_openrouter_rejects_requests_outside_the_description(
    fake_server: ServerThread, fake: Any
) -> None:
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            fake_server.url + "/api/v1/keys",
            json={"name": "x", "limit_reset": "yearly"},
            headers={"Authorization": f"Bearer {MANAGEMENT}"},
        )
    assert resp.status_code == 400
    assert "limit_reset" in resp.json()["error"]["message"]


async def test_a_restored_version_reaches_openrouter_through_the_outbox(
    router: Router, fake: Any, routing_engine: Engine
) -> None:
    ledger = LedgerService(routing_engine, Policy(), lambda: datetime(2026, 11, 9, tzinfo=UTC))
    ledger.register_work_order(_wo(), "seo_audit.yaml")
    await router.bind(_wo())  # provisions the key and publishes v1 for A
    changed = _wo()
    changed = changed.model_copy(
        update={"preset": changed.preset.model_copy(update={"system_prompt": "Be terse."})}
    )
    ledger.register_work_order(changed, "seo_audit.yaml")
    await router.bind(changed)
    assert ledger.restore_preset("seo_audit", 1) == 3
    delivery = OutboxDelivery(routing_engine, {presets.CHANNEL: publish_presets(router)})
    [done] = await delivery.drain()
    assert (done.row.kind, done.note) == ("preset_publication", "published")
    prompts = [v["system_prompt"] for v in fake.presets["cleanday-seo-audit"]]
    assert prompts == ["Be brief.", "Be terse.", "Be brief."]


async def test_a_promotion_in_the_ledger_reaches_openrouter_through_the_outbox(
    router: Router, fake: Any, routing_engine: Engine
) -> None:
    ledger = LedgerService(routing_engine, Policy(), lambda: datetime(2026, 11, 9, tzinfo=UTC))
    ledger.register_work_order(_wo(), "seo_audit.yaml")
    await router.bind(_wo())  # provisions the key and publishes v1 for A
    ledger.override("seo_audit", "trusted already", tier=Tier.C)
    assert len(fake.presets["cleanday-seo-audit"]) == 1  # queued, not yet sent
    delivery = OutboxDelivery(routing_engine, {presets.CHANNEL: publish_presets(router)})
    [done] = await delivery.drain()
    assert (done.row.kind, done.note) == ("preset_publication", "published")
    assert [v["config"]["temperature"] for v in fake.presets["cleanday-seo-audit"]] == [0.7, 0.2]
    assert await delivery.drain() == []


async def test_a_worker_without_the_provisioned_keys_file_is_told_to_share_the_keys_dir(
    router: Router, fake: Any, routing_engine: Engine, fake_server: ServerThread, tmp_path: Path
) -> None:
    from cleanday.errors import ConfigError

    await router.bind(_wo())  # the first worker provisions the key, its file in its data dir
    other = Router(
        router.settings.model_copy(update={"data_dir": tmp_path / "other-machine"}),
        SpendStore(routing_engine),
        PresetStore(routing_engine),
        SecretResolver(env={"KEY_SEO_AUDIT": CANARY}),
    )
    with pytest.raises(ConfigError, match=r"seo_audit.*not on this machine.*shared volume"):
        await other.bind(_wo())
    assert len(fake.keys) == 1  # no second key was provisioned behind the first one's back
