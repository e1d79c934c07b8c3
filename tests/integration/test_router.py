# ruff: noqa: F401, F811
"""The router against real HTTP: fallbacks, refusals, 429 retries, guardrails, secrets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from cleanday.config import Settings
from cleanday.domain import Tier
from cleanday.errors import (
    BudgetExceeded,
    PolicyViolation,
    ProviderRefused,
    RateLimited,
    RoutingError,
    SecretResolutionError,
)
from cleanday.router import ModelInfo, Router, RouterConfig
from cleanday.router.tables import ROUTING_TABLES
from cleanday.workorder import Guardrails
from tests.fakes.router_fixtures import (
    CANARY,
    MakeRouter,
    Provider,
    Sleeps,
    _primary_server,
    _secondary_server,
    make_router,
    primary,
    routing_engine,
    secondary,
    work_order,
)

HELLO = [{"role": "user", "content": "audit example.com"}]


async def test_answer_from_openrouter_records_its_reported_cost(
    make_router: MakeRouter, primary: Provider, secondary: Provider
) -> None:
    router = make_router()
    router.bind_local(work_order())
    done = await router.complete("seo_audit", Tier.A, HELLO, run_id="r1")
    assert done.transport == "openrouter"
    assert done.cost_usd == pytest.approx(0.1)
    assert not done.fell_back and not done.budget_refused
    await router.drain()  # the settlement is not waited for by the caller
    assert router.spend.spend("seo_audit") == pytest.approx(0.1)
    sent = primary.requests()[-1]["body"]
    assert sent["user"] == "seo_audit"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["temperature"] == 0.7
    assert secondary.requests() == []


@pytest.mark.parametrize("fault", ["500", "402"])
async def test_server_error_or_402_falls_back_to_anthropic_and_is_recorded(
    make_router: MakeRouter, primary: Provider, secondary: Provider, fault: str
) -> None:
    router = make_router()
    router.bind_local(work_order())
    primary.fault("seo_audit", fault)
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "anthropic"
    assert done.fell_back
    assert [(a.transport, a.status) for a in done.attempts] == [
        ("openrouter", int(fault)),
        ("anthropic", 200),
    ]
    assert done.budget_refused is (fault == "402")
    anthropic_body = secondary.requests()[-1]["body"]
    assert anthropic_body["model"] == "test-model-a"
    assert anthropic_body["metadata"] == {"user_id": "seo_audit"}


async def test_402_with_no_fallback_left_is_a_budget_gate_failure(
    make_router: MakeRouter, primary: Provider
) -> None:
    router = make_router()
    router.bind_local(work_order(transports={"order": ["openrouter"]}))
    primary.fault("seo_audit", "402")
    with pytest.raises(BudgetExceeded) as err:
        await router.complete("seo_audit", Tier.A, HELLO)
    assert err.value.gate == "budget"
    with router.engine.connect() as conn:
        statuses = [r[0] for r in conn.execute(text("select status from key_spend"))]
    assert statuses == ["refused_402"]


async def test_timeout_in_its_class_falls_back(
    make_router: MakeRouter, primary: Provider, secondary: Provider
) -> None:
    router = make_router(config=RouterConfig(timeouts={"fast": 0.3, "reasoning": 1.0}))
    router.bind_local(work_order())
    primary.fault("seo_audit", "slow", delay_s=1.5)
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "anthropic"
    assert done.attempts[0].status is None
    assert "timeout after 0.3s" in (done.attempts[0].error or "")


async def test_connection_error_falls_back(make_router: MakeRouter, secondary: Provider) -> None:
    router = make_router(settings={"OPENROUTER_BASE_URL": "http://127.0.0.1:9/v1"})
    router.bind_local(work_order())
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "anthropic" and done.fell_back
    assert done.attempts[0].status is None
    assert "connection error" in (done.attempts[0].error or "")


def _mock_client(status_for_openrouter: int, seen: list[str]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if "/chat/completions" in request.url.path:
            # a provider that echoes the credential back in its error: it must never surface
            auth = request.headers.get("authorization", "")
            return httpx.Response(
                status_for_openrouter, json={"error": {"message": f"refused for {auth}"}}
            )
        return httpx.Response(
            200,
            json={
                "content": [{"type": "text", "text": "from anthropic"}],
                "model": "test-model-a",
                "usage": {"input_tokens": 3, "output_tokens": 2},
            },
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_refusal_never_falls_back(make_router: MakeRouter, status: int) -> None:
    router = make_router()
    seen: list[str] = []
    router._client = _mock_client(status, seen)
    router.bind_local(work_order())
    with pytest.raises(ProviderRefused) as err:
        await router.complete("seo_audit", Tier.A, HELLO)
    assert len(seen) == 1 and "/chat/completions" in seen[0]
    assert str(status) in str(err.value)
    assert CANARY not in str(err.value)
    assert "[redacted]" in str(err.value)


async def test_429_is_retried_honouring_retry_after(
    make_router: MakeRouter, primary: Provider, secondary: Provider
) -> None:
    sleeps = Sleeps()
    router = make_router(sleep=sleeps)
    router.bind_local(work_order())
    primary.fault("seo_audit", "429", count=2, retry_after=7)
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "openrouter" and not done.fell_back
    assert [a.status for a in done.attempts] == [429, 429, 200]
    assert sleeps.calls == [7, 7]
    assert secondary.requests() == []


async def test_third_429_is_a_documented_failure_without_fallback(
    make_router: MakeRouter, primary: Provider, secondary: Provider
) -> None:
    sleeps = Sleeps()
    router = make_router(sleep=sleeps)
    router.bind_local(work_order())
    primary.fault("seo_audit", "429", count=5, retry_after=1)
    with pytest.raises(RateLimited) as err:
        await router.complete("seo_audit", Tier.A, HELLO)
    assert len(primary.requests()) == 3
    assert len(sleeps.calls) == 2
    assert [a.status for a in err.value.attempts] == [429, 429, 429]  # type: ignore[attr-defined]
    assert secondary.requests() == []


async def test_every_transport_failing_is_a_routing_error(
    make_router: MakeRouter, primary: Provider, secondary: Provider
) -> None:
    router = make_router()
    router.bind_local(work_order())
    primary.fault("seo_audit", "500")
    secondary.fault("seo_audit", "500")
    with pytest.raises(RoutingError) as err:
        await router.complete("seo_audit", Tier.A, HELLO)
    assert type(err.value) is RoutingError


async def test_openrouter_is_never_used_unless_granted(
    make_router: MakeRouter, primary: Provider, secondary: Provider
) -> None:
    router = make_router()
    router.bind_local(work_order(transports={"order": ["anthropic"]}))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "anthropic"
    assert primary.requests() == []


async def test_local_transport_costs_nothing_and_sends_no_key(
    make_router: MakeRouter, primary: Provider
) -> None:
    router = make_router(env={})  # no secret at all: the local provider needs none
    router.bind_local(work_order(transports={"order": ["local"]}))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "local" and done.cost_usd == 0.0
    assert done.text.startswith("local answer for seo_audit")


async def test_tier_overrides_tighten_parameters_sent(
    make_router: MakeRouter, primary: Provider
) -> None:
    router = make_router()
    wo = work_order(
        preset={
            "name": "seo_audit",
            "model": "anthropic/test-model-a",
            "parameters": {"temperature": 0.7, "max_tokens": 200},
            "tiers": {"C": {"temperature": 0.1}},
        }
    )
    router.bind_local(wo)
    await router.complete("seo_audit", Tier.B, HELLO)
    await router.complete("seo_audit", Tier.WINGS, HELLO)
    temps = [r["body"]["temperature"] for r in primary.requests()]
    assert temps == [0.7, 0.1]


# --- guardrails -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guardrails", "transports", "parameters", "needle"),
    [
        ({"blocked_models": ["anthropic/*"]}, ["openrouter"], {}, "blocked"),
        ({"allowed_providers": ["openai"]}, ["openrouter"], {}, "not in the allowed"),
        ({"allowed_providers": ["anthropic"]}, ["openrouter", "anthropic"], {}, None),
        ({"require_zdr": True}, ["openrouter", "anthropic"], {}, "zero data retention"),
        ({}, ["openrouter"], {"modalities": ["image", "text"]}, "image route"),
        ({"image_route": "local"}, ["openrouter"], {"modalities": ["image"]}, "image route"),
        ({"image_route": "openrouter"}, ["openrouter"], {"modalities": ["image"]}, None),
    ],
)
async def test_guardrails_are_checked_before_any_request(
    make_router: MakeRouter,
    primary: Provider,
    secondary: Provider,
    guardrails: dict[str, Any],
    transports: list[str],
    parameters: dict[str, Any],
    needle: str | None,
) -> None:
    router = make_router()
    router.bind_local(
        work_order(
            guardrails=guardrails,
            transports={"order": transports},
            preset={
                "name": "seo_audit",
                "model": "anthropic/test-model-a",
                "parameters": parameters,
            },
        )
    )
    if needle is None:
        done = await router.complete("seo_audit", Tier.A, HELLO)
        assert done.transport == transports[0]
        return
    with pytest.raises(PolicyViolation) as err:
        await router.complete("seo_audit", Tier.A, HELLO)
    assert err.value.gate == "policy"
    assert needle in str(err.value)
    assert primary.requests() == [] and secondary.requests() == []


async def test_zdr_requirement_is_sent_to_openrouter(
    make_router: MakeRouter, primary: Provider
) -> None:
    router = make_router()
    router.bind_local(
        work_order(guardrails={"require_zdr": True}, transports={"order": ["openrouter"]})
    )
    await router.complete("seo_audit", Tier.A, HELLO)
    assert primary.requests()[-1]["body"]["provider"] == {"zdr": True}


async def test_shared_policy_applies_to_every_behavior_naming_it(
    make_router: MakeRouter, primary: Provider
) -> None:
    config = RouterConfig(policies={"strict": Guardrails(blocked_models=("anthropic/test-*",))})
    router = make_router(config=config)
    router.bind_local(work_order(guardrails={"policy": "strict"}))
    with pytest.raises(PolicyViolation, match="policy strict"):
        await router.complete("seo_audit", Tier.A, HELLO)
    assert primary.requests() == []


# --- secrets --------------------------------------------------------------------------


async def test_canary_secret_never_reaches_database_logs_or_errors(
    make_router: MakeRouter,
    primary: Provider,
    secondary: Provider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    router = make_router(sleep=Sleeps())
    router.bind_local(work_order())
    texts: list[str] = []
    await router.complete("seo_audit", Tier.A, HELLO)
    primary.fault("seo_audit", "500")
    texts.append(repr(await router.complete("seo_audit", Tier.A, HELLO)))
    primary.fault("seo_audit", "429", count=3)
    with pytest.raises(RateLimited) as rl:
        await router.complete("seo_audit", Tier.A, HELLO)
    texts += [str(rl.value), repr(rl.value.attempts)]  # type: ignore[attr-defined]
    router._client = _mock_client(401, [])
    with pytest.raises(ProviderRefused) as refused:
        await router.complete("seo_audit", Tier.A, HELLO)
    texts += [str(refused.value), repr(refused.value.attempts)]  # type: ignore[attr-defined]
    # the providers did receive it (that is their job) ...
    # ... but nothing cleanday keeps does
    with router.engine.connect() as conn:
        for table in ROUTING_TABLES:
            for row in conn.execute(table.select()):
                texts.append(repr(tuple(row)))
    texts.append(caplog.text)
    assert len(texts) > 5
    for t in texts:
        assert CANARY not in t


async def test_anthropic_cost_is_tokens_times_the_configured_price(
    make_router: MakeRouter, secondary: Provider
) -> None:
    config = RouterConfig(
        models={"anthropic/*": ModelInfo(input_per_mtok=3.0, output_per_mtok=15.0)}
    )
    router = make_router(config=config)
    router.bind_local(work_order(transports={"order": ["anthropic"]}))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.tokens_in > 0 and done.tokens_out > 0
    assert done.cost_usd > 0
    assert done.cost_usd == pytest.approx((done.tokens_in * 3 + done.tokens_out * 15) / 1e6)
    await router.drain()
    assert router.spend.spend("seo_audit") == pytest.approx(done.cost_usd)


async def test_timeout_class_is_derived_from_model_metadata_when_the_preset_is_silent(
    make_router: MakeRouter, primary: Provider
) -> None:
    config = RouterConfig(
        timeouts={"fast": 0.3, "reasoning": 3.0},
        models={"anthropic/test-*": ModelInfo(timeout_class="reasoning")},
    )
    router = make_router(config=config)
    router.bind_local(work_order(transports={"order": ["openrouter"]}))
    primary.fault("seo_audit", "slow", delay_s=0.8)
    done = await router.complete("seo_audit", Tier.A, HELLO)  # would time out as "fast"
    assert done.transport == "openrouter" and not done.fell_back


async def test_a_worker_builds_the_router_from_the_database_url_alone(
    make_router: MakeRouter, primary: Provider, routing_engine: Engine, tmp_path: Path
) -> None:
    make_router().bind_local(work_order(transports={"order": ["local"]}))
    settings = Settings.model_validate(
        {
            "DATABASE_URL": routing_engine.url.render_as_string(hide_password=False),
            "CLEANDAY_LOCAL_PROVIDER_URL": primary.url + "/v1",
            "CLEANDAY_DATA_DIR": str(tmp_path),
        }
    )
    worker_router = Router.from_settings(settings)
    done = await worker_router.complete("seo_audit", Tier.B, HELLO, run_id="wf-1")
    assert done.transport == "local"
    worker_router.engine.dispose()


async def test_missing_secret_names_the_reference_and_sends_nothing(
    make_router: MakeRouter, primary: Provider, routing_engine: Engine
) -> None:
    router = make_router(env={})
    router.bind_local(work_order())
    # the deployment's fault, not a provider's: the run reports it as an infrastructure error
    with pytest.raises(
        SecretResolutionError, match="env:KEY_SEO_AUDIT: environment variable not set"
    ):
        await router.complete("seo_audit", Tier.A, HELLO)
    assert primary.requests() == []
    assert router.spend.spend("seo_audit") == 0.0  # the reservation was released


async def test_a_new_preset_version_or_binding_is_used_by_the_very_next_call(
    make_router: MakeRouter, primary: Provider, secondary: Provider
) -> None:
    # the binding and preset are cached between calls (PostgreSQL); the cache is checked
    # against the database inside every reservation
    router = make_router()
    router.bind_local(work_order())
    await router.complete("seo_audit", Tier.A, HELLO)
    assert primary.requests()[-1]["body"]["temperature"] == 0.7
    router.bind_local(work_order(preset={"parameters": {"temperature": 0.2, "max_tokens": 200}}))
    await router.complete("seo_audit", Tier.A, HELLO)
    assert primary.requests()[-1]["body"]["temperature"] == 0.2
    router.bind_local(work_order(transports={"order": ["anthropic"]}))
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.transport == "anthropic"
    assert len(primary.requests()) == 2 and len(secondary.requests()) == 1
    await router.drain()
    with router.engine.connect() as conn:
        statuses = [r[0] for r in conn.execute(text("select status from key_spend order by id"))]
    assert statuses == ["settled"] * 3  # no reservation was made on a stale plan
