"""Fixtures for the router tests: a routing database (SQLite and PostgreSQL), local providers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from cleanday.budget import SpendStore
from cleanday.config import Settings
from cleanday.db import make_engine, migrate
from cleanday.localprovider import DEFAULT_SPEC, ServerThread, create_app, validator_for
from cleanday.presets import PresetStore
from cleanday.router import Router, RouterConfig
from cleanday.secrets import SecretResolver
from cleanday.workorder import WorkOrder

CANARY = "test-canary-3f9a-do-not-leak-7c21"


@pytest.fixture
def routing_engine(engine: Engine) -> Engine:
    """The shared migrated ledger database (tests/conftest.py), on SQLite and PostgreSQL."""
    return engine


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite ledger only, for tests about logic rather than the back end."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


class Provider:
    """A local provider in a thread with helpers to queue faults and read what it received."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.url = server.url

    def fault(self, behavior: str, fault: str, **extra: Any) -> None:
        resp = httpx.post(
            f"{self.url}/_control/faults", json={"behavior": behavior, "fault": fault, **extra}
        )
        resp.raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = httpx.get(f"{self.url}/_control/requests").json()
        return data

    def reset(self) -> None:
        httpx.post(f"{self.url}/_control/reset").raise_for_status()


def _provider(cost_usd: float = 0.0, scripts: Path | None = None) -> Iterator[Provider]:
    # compile the validators before serving, so no test's first request waits for the
    # 1.3 MB description to load (a timeout test would see that as a slow provider)
    validator_for(DEFAULT_SPEC, "ChatRequest")
    validator_for(DEFAULT_SPEC, "MessagesRequest")
    server = ServerThread(create_app(scripts, cost_usd=cost_usd)).start()
    try:
        yield Provider(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def _primary_server() -> Iterator[Provider]:
    yield from _provider(cost_usd=0.1)


@pytest.fixture(scope="module")
def _secondary_server() -> Iterator[Provider]:
    yield from _provider()


@pytest.fixture
def primary(_primary_server: Provider) -> Provider:
    """Plays OpenRouter (and the local transport): reports $0.10 per call."""
    _primary_server.reset()
    return _primary_server


@pytest.fixture
def secondary(_secondary_server: Provider) -> Provider:
    """Plays the direct Anthropic API."""
    _secondary_server.reset()
    return _secondary_server


def work_order(name: str = "seo_audit", **overrides: Any) -> WorkOrder:
    data: dict[str, Any] = {
        "name": name,
        "description": "test behavior",
        "trigger": {"type": "interval", "every_seconds": 60},
        "reports": "what it did",
        "key": {"ref": f"env:KEY_{name.upper()}", "cap_usd": 1.0},
        "preset": {
            "name": name,
            "system_prompt": "Be brief.",
            "model": "anthropic/test-model-a",
            "parameters": {"temperature": 0.7, "max_tokens": 200},
        },
        "transports": {"order": ["openrouter", "anthropic"]},
        "entry": "behaviors.x:run",
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return WorkOrder.model_validate(data)


class Sleeps:
    """Records the Retry-After waits instead of sleeping them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


MakeRouter = Callable[..., Router]


@pytest.fixture
def make_router(
    routing_engine: Engine, primary: Provider, secondary: Provider, tmp_path: Path
) -> Iterator[MakeRouter]:
    clients: list[httpx.AsyncClient] = []

    def make(
        *,
        config: RouterConfig | None = None,
        env: dict[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        timezone: str = "UTC",
        settings: dict[str, Any] | None = None,
        sleep: Any = None,
    ) -> Router:
        s = Settings.model_validate(
            {
                "OPENROUTER_BASE_URL": primary.url + "/v1",
                "ANTHROPIC_BASE_URL": secondary.url,
                "CLEANDAY_LOCAL_PROVIDER_URL": primary.url + "/v1",
                "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
                "CLEANDAY_TIMEZONE": timezone,
                **(settings or {}),
            }
        )
        env = env if env is not None else {"KEY_SEO_AUDIT": CANARY}
        kwargs: dict[str, Any] = {"config": config or RouterConfig()}
        if sleep is not None:
            kwargs["sleep"] = sleep
        return Router(
            s,
            SpendStore(routing_engine, timezone=timezone, clock=clock),
            PresetStore(routing_engine, clock=clock),
            SecretResolver(env=env),
            **kwargs,
        )

    yield make
    for client in clients:
        del client


def fixed_clock(at: datetime) -> Callable[[], datetime]:
    assert at.tzinfo is not None
    return lambda: at.astimezone(UTC)


@pytest.fixture
def local_provider(tmp_path: Path) -> Iterator[Provider]:
    """The local model provider on a free port in a thread, with `behaviors` scripts from
    `tmp_path / "local_scripts.yaml"` (write it before the first request)."""
    yield from _provider(scripts=tmp_path / "local_scripts.yaml")
