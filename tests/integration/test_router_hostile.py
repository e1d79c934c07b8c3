# ruff: noqa: F401, F811
"""Provider answers are untrusted: the router against a hostile provider (trickled bodies,
malformed 200s, impossible costs, no usage, long Retry-After, keys echoed back)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from cleanday.budget import SpendStore
from cleanday.config import Settings
from cleanday.domain import Tier
from cleanday.errors import BudgetExceeded, RateLimited, RoutingError
from cleanday.localprovider import ServerThread
from cleanday.presets import PresetStore
from cleanday.router import ModelInfo, Router, RouterConfig
from cleanday.secrets import SecretResolver
from tests.fakes.hostile_provider import HostileProvider, Reply, chat, messages
from tests.fakes.router_fixtures import CANARY, Sleeps, routing_engine, sqlite_engine, work_order

HELLO = [{"role": "user", "content": "audit example.com"}]
# $1 / $5 per million tokens: a call's estimate is about $0.001 (200 output tokens)
PRICES = {"anthropic/*": ModelInfo(input_per_mtok=1.0, output_per_mtok=5.0)}


@pytest.fixture(scope="module")
def _hostile_server() -> Iterator[tuple[HostileProvider, str]]:
    provider = HostileProvider()
    server = ServerThread(provider.app).start()
    try:
        yield provider, server.url
    finally:
        server.stop()


@pytest.fixture
def hostile(_hostile_server: tuple[HostileProvider, str]) -> HostileProvider:
    _hostile_server[0].reset()
    return _hostile_server[0]


@pytest.fixture
def settings(_hostile_server: tuple[HostileProvider, str], tmp_path: Path) -> Settings:
    url = _hostile_server[1]
    return Settings.model_validate(
        {
            "OPENROUTER_BASE_URL": url + "/or",
            "ANTHROPIC_BASE_URL": url,
            "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
        }
    )


def _maker(engine: Engine, settings: Settings) -> Any:
    def make(sleep: Sleeps | None = None, **config: Any) -> Router:
        return Router(
            settings,
            SpendStore(engine),
            PresetStore(engine),
            SecretResolver(env={"KEY_SEO_AUDIT": CANARY}),
            config=RouterConfig(models=PRICES, **config),
            sleep=sleep or Sleeps(),
        )

    return make


@pytest.fixture
def make(sqlite_engine: Engine, settings: Settings) -> Any:
    """A router on SQLite: the answer rules are the router's, the same on either database."""
    return _maker(sqlite_engine, settings)


@pytest.fixture
def make_on(routing_engine: Engine, settings: Settings) -> Any:
    """A router on SQLite and on PostgreSQL, for what the budget's database takes part in."""
    return _maker(routing_engine, settings)


def _statuses(router: Router) -> list[tuple[str, str, float]]:
    with router.engine.connect() as conn:
        return [
            (r[0], r[1], float(r[2]))
            for r in conn.execute(
                text("select transport, status, cost_usd from key_spend order by id")
            )
        ]


# --- a timeout class is the deadline of the whole attempt --------------------------------


async def test_a_trickled_answer_is_cut_off_at_its_timeout_class_and_falls_back(
    make: Any, hostile: HostileProvider
) -> None:
    """Today each read had its own 0.5 s: 8 chunks 0.3 s apart held the call 2.4 s, 'success'."""
    router = make(timeouts={"fast": 0.5, "reasoning": 5.0})
    router.bind_local(work_order())
    hostile.script("openrouter", Reply(body=chat(), chunks=8, trickle_s=0.3))
    began = time.monotonic()
    done = await router.complete("seo_audit", Tier.A, HELLO)
    elapsed = time.monotonic() - began
    assert done.transport == "anthropic" and done.fell_back
    assert done.attempts[0].status is None
    assert "timeout after 0.5s" in (done.attempts[0].error or "")
    assert elapsed < 1.5, f"the trickled attempt held the call {elapsed:.1f} s"


async def test_a_call_never_outlives_its_deadline_across_fallbacks(
    make: Any, hostile: HostileProvider
) -> None:
    router = make(timeouts={"fast": 0.4}, call_deadlines={"fast": 0.6})
    router.bind_local(work_order())
    hostile.script("openrouter", Reply(body=chat(), chunks=8, trickle_s=0.3))
    hostile.script("anthropic", Reply(body=messages(), chunks=8, trickle_s=0.3))
    began = time.monotonic()
    with pytest.raises(RoutingError) as err:
        await router.complete("seo_audit", Tier.A, HELLO)
    assert time.monotonic() - began < 1.2
    # the fallback got only what was left of the call's 0.6 s
    errors = [a.error for a in err.value.attempts]  # type: ignore[attr-defined]
    assert errors[0] == "timeout after 0.4s" and errors[1].startswith("timeout after 0.")
    assert errors[1] != "timeout after 0.4s"


# --- a malformed 200 is a provider fault --------------------------------------------------


MALFORMED_CHAT = {
    "message null": chat(message=None),
    "usage not an object": chat(usage="lots"),
    "usage a list": chat(usage=[1, 2]),
    "no choices": {**chat(), "choices": []},
    "choices not a list": {**chat(), "choices": {"0": {}}},
    "negative tokens": chat(usage={"prompt_tokens": -5, "completion_tokens": 1, "cost": 0.1}),
    "a list, not an answer": [chat()],
    "not JSON": b"<html>502 Bad Gateway</html>",
}


@pytest.mark.parametrize("shape", sorted(MALFORMED_CHAT))
async def test_a_malformed_200_falls_back_is_charged_its_estimate_and_recorded(
    make: Any, hostile: HostileProvider, shape: str
) -> None:
    """Today `choices[0].message: null` or a non-object usage raised AttributeError."""
    router = make()
    router.bind_local(work_order())
    hostile.script("openrouter", Reply(body=MALFORMED_CHAT[shape]))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "anthropic" and done.fell_back
    assert done.attempts[0].status == 200
    assert (done.attempts[0].error or "").startswith("malformed answer")
    assert len(done.doubts) == 1 and "charged its estimate" in done.doubts[0]
    await router.drain()
    first, second = _statuses(router)
    assert first[:2] == ("openrouter", "settled") and first[2] > 0  # it may have billed
    assert second[:2] == ("anthropic", "settled")


@pytest.mark.parametrize(
    "body",
    [
        messages(content=None),
        messages(content=[None]),
        messages(usage="lots"),
        messages(usage={"input_tokens": "ten", "output_tokens": 1}),
    ],
    ids=["content null", "block null", "usage not an object", "tokens not a number"],
)
async def test_a_malformed_anthropic_answer_falls_back_too(
    make: Any, hostile: HostileProvider, body: Any
) -> None:
    router = make()
    router.bind_local(work_order(transports={"order": ["anthropic", "openrouter"]}))
    hostile.script("anthropic", Reply(body=body))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "openrouter" and done.fell_back
    assert done.attempts[0].status == 200 and done.doubts


async def test_a_malformed_200_with_no_fallback_left_is_a_routing_error_not_a_crash(
    make: Any, hostile: HostileProvider
) -> None:
    router = make()
    router.bind_local(work_order(transports={"order": ["openrouter"]}))
    hostile.script("openrouter", Reply(body=chat(message=None)))
    with pytest.raises(RoutingError, match="every transport failed"):
        await router.complete("seo_audit", Tier.A, HELLO)


# --- cost is not trusted as sent ----------------------------------------------------------


@pytest.mark.parametrize("reported", [-0.01, 1e400, -1e400, "0.5", True, {"usd": 1}])
async def test_an_impossible_reported_cost_is_replaced_by_the_price_table_and_flagged(
    make: Any, hostile: HostileProvider, reported: Any, caplog: pytest.LogCaptureFixture
) -> None:
    router = make()
    router.bind_local(work_order())
    # json.dumps writes 1e400 as Infinity, which a provider's JSON decoder reads back as inf
    hostile.script("openrouter", Reply(body=chat(cost=reported)))
    with caplog.at_level(logging.WARNING, logger="cleanday.router"):
        done = await router.complete("seo_audit", Tier.A, HELLO)
    price = (10 * 1.0 + 5 * 5.0) / 1e6
    assert done.transport == "openrouter" and not done.fell_back
    assert done.cost_usd == pytest.approx(price)
    assert len(done.doubts) == 1 and "price table" in done.doubts[0]
    assert "which is not a cost" in caplog.text
    await router.drain()
    assert router.spend.spend("seo_audit") == pytest.approx(price)


async def test_a_negative_reported_cost_cannot_carry_calls_past_the_cap(
    make_on: Any, hostile: HostileProvider
) -> None:
    """Today `usage.cost = -0.01` let 30 calls through a $0.05 cap."""
    router = make_on()
    router.bind_local(work_order(key={"ref": "env:KEY_SEO_AUDIT", "cap_usd": 0.05}))
    # each call really costs $0.002 at the price table (its estimate is about $0.001)
    usage = {"prompt_tokens": 1000, "completion_tokens": 200, "cost": -0.01}
    hostile.script("openrouter", *[Reply(body=chat(usage=usage)) for _ in range(60)])
    made = 0
    with pytest.raises(BudgetExceeded):
        for _ in range(60):
            await router.complete("seo_audit", Tier.A, HELLO)
            await router.drain()
            made += 1
    spent = router.spend.spend("seo_audit")
    # the cap holds up to one call's actual cost above its estimate
    assert 0.05 - 0.002 <= spent <= 0.05 + 0.001
    assert made == pytest.approx(spent / 0.002)


async def test_an_answer_without_usage_is_charged_its_estimate_and_flagged(
    make: Any, hostile: HostileProvider
) -> None:
    """Today it was recorded as $0 and its reservation released: the call went unmetered."""
    router = make()
    router.bind_local(work_order())
    hostile.script("openrouter", Reply(body=chat(usage=None)))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "openrouter"
    assert done.cost_usd > 0 and "without usage" in done.doubts[0]
    await router.drain()
    assert _statuses(router) == [("openrouter", "settled", pytest.approx(done.cost_usd))]


async def test_a_local_answer_without_usage_costs_nothing_and_is_no_anomaly(
    make: Any, hostile: HostileProvider, settings: Settings
) -> None:
    router = make()
    router.settings = settings.model_copy(
        update={"local_provider_url": str(settings.openrouter_base_url)}
    )
    router._transports["local"].settings = router.settings
    router.bind_local(work_order(transports={"order": ["local"]}))
    hostile.script("openrouter", Reply(body=chat(usage=None)))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "local" and done.cost_usd == 0 and done.doubts == ()


# --- Retry-After is honoured -------------------------------------------------------------


async def test_a_retry_after_within_what_the_call_may_wait_is_waited_in_full(
    make: Any, hostile: HostileProvider
) -> None:
    """Today it was capped at 60 s: a server asking for 120 s got its retries early."""
    sleeps = Sleeps()
    router = make(sleep=sleeps, max_retry_after_s=300.0, call_deadlines={"fast": 600.0})
    router.bind_local(work_order())
    hostile.script("openrouter", Reply(429, {"error": {"message": "slow down"}},
                                       headers={"Retry-After": "120"}))  # fmt: skip
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "openrouter" and sleeps.calls == [120.0]


@pytest.mark.parametrize(
    ("retry_after", "config", "because"),
    [
        ("120", {}, "the time it has left"),  # default: 120 s left at most, 60 s cap
        ("90", {"call_deadlines": {"fast": 600.0}}, "max_retry_after_s 60"),
        ("45", {"call_deadlines": {"fast": 40.0}}, "longer than the call may wait (40 s"),
    ],
)
async def test_a_retry_after_longer_than_the_call_may_wait_stops_at_once(
    make: Any, hostile: HostileProvider, retry_after: str, config: dict[str, Any], because: str
) -> None:
    sleeps = Sleeps()
    router = make(sleep=sleeps, **config)
    router.bind_local(work_order())
    hostile.script("openrouter", Reply(429, {"error": {"message": "slow down"}},
                                       headers={"Retry-After": retry_after}))  # fmt: skip
    with pytest.raises(RateLimited) as err:
        await router.complete("seo_audit", Tier.A, HELLO)
    assert because in str(err.value) and "rather than retrying early" in str(err.value)
    assert sleeps.calls == []  # no early retry, no fallback
    assert len(hostile.received) == 1


# --- key text in a good answer is redacted -----------------------------------------------


async def test_key_text_in_a_good_answer_is_redacted_at_the_router(
    make: Any, hostile: HostileProvider, sqlite_engine: Engine
) -> None:
    router = make()
    router.bind_local(work_order())
    hostile.script("openrouter", Reply(body=chat(f"your key is {CANARY}, keep it", model=CANARY)))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert CANARY not in done.text and CANARY not in done.model
    assert done.text == "your key is [redacted], keep it"
    await router.drain()
    with sqlite_engine.connect() as conn:
        rows = [repr(tuple(r)) for r in conn.execute(text("select * from key_spend"))]
    assert rows and not any(CANARY in r for r in rows)


# --- a fresh process ----------------------------------------------------------------------

_FRESH = """
import asyncio, json, sys
from cleanday.config import Settings
from cleanday.domain import Tier
from cleanday.router import Router

async def main() -> None:
    router = Router.from_settings(Settings.model_validate(json.loads(sys.argv[1])))
    done = await router.complete("seo_audit", Tier.A, [{"role": "user", "content": "hi"}])
    await router.drain()
    print(json.dumps({"transport": done.transport, "text": done.text}))

asyncio.run(main())
"""


def test_router_complete_works_in_a_fresh_process_that_bound_nothing(
    make_on: Any, routing_engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """Today: AttributeError 'NoneType' object has no attribute 'supports_population'."""
    make_on().bind_local(work_order())
    values = {
        "DATABASE_URL": routing_engine.url.render_as_string(hide_password=False),
        "OPENROUTER_BASE_URL": settings.openrouter_base_url,
        "ANTHROPIC_BASE_URL": settings.anthropic_base_url,
        "CLEANDAY_DATA_DIR": str(tmp_path / "fresh"),
    }
    # the process environment (PYTHONPATH, PATH) and the key: no settings of this process
    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH")}}
    env["KEY_SEO_AUDIT"] = CANARY
    out = subprocess.run(
        [sys.executable, "-c", _FRESH, json.dumps(values)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "transport": "openrouter",
        "text": "a fine answer",
    }
