# ruff: noqa: F401, F811
"""Timeout classes derived from OpenRouter's model list (GET /models), cached, never waited for."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from cleanday.budget import SpendStore
from cleanday.config import Settings
from cleanday.domain import Tier
from cleanday.localprovider import ServerThread
from cleanday.presets import PresetStore
from cleanday.router import ModelInfo, Router, RouterConfig
from cleanday.router.catalog import ModelCatalog
from cleanday.secrets import SecretResolver
from tests.fakes.openrouter import create_fake_openrouter, fake_model
from tests.fakes.router_fixtures import CANARY, routing_engine, work_order

MANAGEMENT = "test-mgmt-catalog-77aa"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[ServerThread]:
    server = ServerThread(create_fake_openrouter(MANAGEMENT)).start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: ServerThread) -> Iterator[Any]:
    state = fake_server.config.app.state.fake
    state.reset()
    state.models.extend(
        [
            fake_model("test/thinker", ["reasoning", "include_reasoning", "max_tokens"]),
            fake_model("test/quick", ["temperature", "max_tokens"]),
        ]
    )
    yield state
    if state.models_gate is not None:
        state.models_gate.set()  # never leave the server holding an answer back


def _router(engine: Engine, server: ServerThread, tmp_path: Path, config: RouterConfig) -> Router:
    settings = Settings.model_validate(
        {
            "OPENROUTER_BASE_URL": server.url + "/api/v1",
            "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT,
            "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
        }
    )
    return Router(
        settings,
        SpendStore(engine),
        PresetStore(engine),
        SecretResolver(env={"KEY_SEO_AUDIT": CANARY}),
        config=config,
    )


def _wo(model: str, **preset: Any) -> Any:
    return work_order(
        transports={"order": ["openrouter"]},
        preset={"name": "seo_audit", "model": model, "parameters": {"max_tokens": 50}, **preset},
    )


async def test_a_model_listed_with_reasoning_gets_the_reasoning_class_and_the_preset_wins(
    routing_engine: Engine, fake_server: ServerThread, fake: Any, tmp_path: Path
) -> None:
    router = _router(routing_engine, fake_server, tmp_path, RouterConfig())
    await router.bind(_wo("test/thinker"))
    await router.catalog.wait_refreshed()  # registration started the fetch
    assert fake.models_requests == [{}]  # the whole list, through OPENROUTER_BASE_URL
    assert router.timeout_class(router.presets.current("seo_audit")) == "reasoning"
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "openrouter"
    await router.bind(_wo("test/quick"))
    assert router.timeout_class(router.presets.current("seo_audit")) == "fast"
    await router.bind(_wo("test/thinker", timeout_class="fast"))
    assert router.timeout_class(router.presets.current("seo_audit")) == "fast"
    assert fake.models_requests == [{}]  # cached: one fetch for all of the above


async def test_an_unreachable_model_list_never_holds_up_a_call(
    routing_engine: Engine, fake_server: ServerThread, fake: Any, tmp_path: Path
) -> None:
    # the config says reasoning; the list (once it answers) says fast
    config = RouterConfig(models={"test/quick": ModelInfo(timeout_class="reasoning")})
    router = _router(routing_engine, fake_server, tmp_path, config)
    fake.models_gate = threading.Event()  # the list does not answer until released
    await router.bind(_wo("test/quick"))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.text == "fake openrouter answer"
    assert router.catalog.refreshing  # the call was answered while the fetch hangs
    assert router.timeout_class(router.presets.current("seo_audit")) == "reasoning"
    fake.models_gate.set()
    await router.catalog.wait_refreshed()
    assert router.timeout_class(router.presets.current("seo_audit")) == "fast"


async def test_a_failing_model_list_falls_back_to_the_config_then_fast_and_is_not_retried_per_call(
    routing_engine: Engine, fake_server: ServerThread, fake: Any, tmp_path: Path
) -> None:
    config = RouterConfig(models={"test/thinker": ModelInfo(timeout_class="reasoning")})
    router = _router(routing_engine, fake_server, tmp_path, config)
    fake.models_status = 503
    await router.bind(_wo("test/thinker"))
    await router.catalog.wait_refreshed()
    assert router.timeout_class(router.presets.current("seo_audit")) == "reasoning"  # config
    await router.bind(_wo("test/quick"))
    assert router.timeout_class(router.presets.current("seo_audit")) == "fast"  # default
    for _ in range(3):
        await router.complete("seo_audit", Tier.A, HELLO)
    await router.catalog.wait_refreshed()
    assert len(fake.models_requests) == 1  # retried after retry_s, not on every call


async def test_the_model_list_is_fetched_again_once_its_ttl_has_passed(
    fake_server: ServerThread, fake: Any
) -> None:
    now = [1000.0]
    async with httpx.AsyncClient() as client:
        catalog = ModelCatalog(
            fake_server.url + "/api/v1", lambda: client, ttl_s=600, clock=lambda: now[0]
        )
        assert catalog.timeout_class("test/thinker") is None and catalog.stale
        assert await catalog.refresh()
        assert catalog.timeout_class("test/thinker") == "reasoning"
        now[0] += 599
        catalog.refresh_soon()
        assert not catalog.refreshing
        fake.models[0] = fake_model("test/thinker", ["temperature"])
        now[0] += 1
        catalog.refresh_soon()
        await catalog.wait_refreshed()
        assert catalog.timeout_class("test/thinker") == "fast"
    assert len(fake.models_requests) == 2
