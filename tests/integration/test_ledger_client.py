"""The ledger client against the real service: over HTTP on loopback (as a worker talks to it)
and in-process through an ASGI transport (as the tests' harness and the demo do)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cleanday.errors import CleandayError, LedgerUnavailable, PermitDenied, UnknownBehaviorError
from cleanday.ledger_client import LedgerClient
from cleanday.localprovider import ServerThread
from tests.temporal.harness import TOKEN, ledger_app, work_order

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    app = ledger_app(tmp_path_factory.mktemp("ledger"))
    server = ServerThread(app)
    server.config.timeout_keep_alive = 1  # the service closes idle connections after 1 s
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["http", "asgi"])
async def ledger(
    request: pytest.FixtureRequest, service: ServerThread
) -> AsyncIterator[LedgerClient]:
    if request.param == "http":
        client = LedgerClient(service.url, TOKEN)
    else:
        app = service.config.app
        client = LedgerClient("http://ledger", TOKEN, transport=httpx.ASGITransport(app=app))
    async with client:
        yield client


def _report(behavior: str, run_id: str, **over: Any) -> dict[str, Any]:
    finished = datetime.now(UTC)
    return {
        "behavior": behavior,
        "run_id": run_id,
        "started_at": (finished - timedelta(seconds=3)).isoformat(),
        "finished_at": finished.isoformat(),
        "outcome": "succeeded",
        "gates": [{"name": "schema", "passed": True, "reason": ""}],
        "anomalies": [],
        "cost_usd": 0.01,
    } | over


async def _registered(ledger: LedgerClient, name: str, tier: str | None = None) -> str:
    await ledger.register(yaml.safe_dump(work_order(name), sort_keys=False))
    if tier is not None:
        await ledger.override(name, "test", kind="forced_tier", tier=tier)
    return name


async def test_reads_and_writes_round_trip(ledger: LedgerClient, request: Any) -> None:
    name = await _registered(ledger, f"client_rt_{request.node.callspec.id}", tier="C")
    body = await ledger.behavior(name)
    assert body["state"]["tier"] == "C"
    assert name in {b["name"] for b in await ledger.behaviors()}

    run_1 = _report(name, f"{name}-run-1")  # a retry sends the very same report
    first, result = await ledger.report_run(run_1)
    again, _ = await ledger.report_run(run_1)
    assert (first, again) == (True, False)
    assert result["recorded"] is True

    batch = await ledger.report_runs([_report(name, f"{name}-run-2"), run_1])
    assert [recorded for recorded, _ in batch] == [True, False]

    permit = await ledger.request_permit(name, f"{name}-run-3")
    assert permit["behavior"] == name


async def test_a_denied_permit_says_why(ledger: LedgerClient, request: Any) -> None:
    name = await _registered(ledger, f"client_deny_{request.node.callspec.id}")  # tier A
    with pytest.raises(PermitDenied) as denied:
        await ledger.request_permit(name, "run-1")
    assert str(denied.value)  # the ledger's reason, not an empty message


async def test_an_unknown_behavior_is_unknown(ledger: LedgerClient) -> None:
    with pytest.raises(UnknownBehaviorError, match="ghost"):
        await ledger.behavior("ghost")


async def test_a_wrong_token_is_named(service: ServerThread) -> None:
    async with LedgerClient(service.url, "not-the-token") as ledger:
        with pytest.raises(CleandayError, match="CLEANDAY_TOKEN"):
            await ledger.register(yaml.safe_dump(work_order("client_token"), sort_keys=False))


async def test_a_bad_request_reports_the_services_detail(ledger: LedgerClient) -> None:
    with pytest.raises(CleandayError, match="finished_at") as bad:
        await ledger.report_run(_report("client_bad", "run-1", finished_at="yesterday"))
    assert not isinstance(bad.value, LedgerUnavailable)


async def test_a_service_that_is_not_there_is_unavailable_naming_where_it_looked() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with LedgerClient(f"http://127.0.0.1:{port}", TOKEN) as ledger:
        with pytest.raises(LedgerUnavailable, match=f"127.0.0.1:{port}.*cleanday up"):
            await ledger.behaviors()


async def test_a_slow_service_times_out_as_unavailable(tmp_path: Path) -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    server = ServerThread(slow).start()
    try:
        async with LedgerClient(server.url, TOKEN, timeout=0.3) as ledger:
            with pytest.raises(LedgerUnavailable, match="did not answer"):
                await ledger.behaviors()
    finally:
        server.server.force_exit = True  # without waiting for the sleeping request
        server.stop()


async def test_requests_after_the_service_closed_idle_connections_still_go_through(
    service: ServerThread,
) -> None:
    async with LedgerClient(service.url, TOKEN) as ledger:
        name = await _registered(ledger, "client_idle", tier="C")
        # many connections opened at once, then left idle past the service's keep-alive (1 s)
        await asyncio.gather(*(ledger.request_permit(name, f"a-{i}") for i in range(20)))
        await asyncio.sleep(1.5)
        permits = await asyncio.gather(*(ledger.request_permit(name, f"b-{i}") for i in range(20)))
        assert len(permits) == 20
        for i in range(20):  # and one by one, each on a connection the pool kept
            await ledger.request_permit(name, f"c-{i}")
