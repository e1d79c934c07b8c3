"""Fixtures for the router tests: a routing database (SQLite and PostgreSQL), local providers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from cleanday.config import Settings
from cleanday.keys import SecretResolver, SpendStore
from cleanday.localprovider import ServerThread, create_app
from cleanday.presets import PresetStore
from cleanday.router import Router, RouterConfig
from cleanday.router.tables import ROUTING_TABLES, SQLModel
from cleanday.workorder import WorkOrder

CANARY = "test-canary-3f9a-do-not-leak-7c21"
POSTGRES_URL = os.environ.get(
    "CLEANDAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_engine() -> Iterator[Engine]:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"cleanday_router_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}")
    engine = create_engine(POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}", pool_size=25)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def routing_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh ledger database with the routing tables, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}", pool_size=25)
        SQLModel.metadata.create_all(engine, tables=ROUTING_TABLES)
        yield engine
        engine.dispose()
    else:
        for engine in _postgres_engine():
            SQLModel.metadata.create_all(engine, tables=ROUTING_TABLES)
            yield engine


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}", pool_size=25)
    SQLModel.metadata.create_all(engine, tables=ROUTING_TABLES)
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
