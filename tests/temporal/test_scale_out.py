"""Past one machine, proven with two of everything: two ledger service instances and two workers
(subprocesses, as `cleanday serve` and `cleanday worker` run) on one PostgreSQL ledger and a
real Temporal dev server.

- a burst of 500 webhook deliveries, split across both instances, is counted exactly once, with
  one worker SIGKILLed mid-burst;
- both instances' clocks (APScheduler, catching up on start) close the day and the Sunday
  review once: one day close, one promotion;
- a webhook replay sent to the other instance is refused;
- every instance reports the same ledger figures on /metrics, and is ready on /readyz;
- exactly one instance drains the outbox (the lease); SIGKILLed, the other takes over within
  the lease's duration, and no Slack alert is sent twice.

The services keep no files of their own (each has an empty data dir of its own); the workers
share theirs, as the scale-out stack's shared volume gives them (their sinks' receipts).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine.url import make_url
from temporalio.testing import WorkflowEnvironment

from cleanday import outbox, outbox_admin
from cleanday.db import make_engine, migrate
from cleanday.domain import Decision, Tier
from cleanday.ledger import LedgerService
from cleanday.models import T_ENTRIES, T_JOBS, T_OUTBOX, T_RUNS
from cleanday.outbox_lease import Lease
from cleanday.scheduler import last_sunday_before
from cleanday.webhooks import sign
from tests.conftest import _admin_dsn, _postgres_server_url
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_slack, slack_server
from tests.integration.ledger_fixtures import FakeClock, report, write_work_order
from tests.integration.test_slack_outage import CHANNELS, alert, delivered_once_in_order
from tests.temporal.harness import TOKEN, work_order

__all__ = ["_shared_slack", "slack_server"]

pytestmark = [
    pytest.mark.temporal,
    pytest.mark.postgres,
    pytest.mark.slow,
]

ROOT = Path(__file__).resolve().parents[2]
BURST = 500
HOOK_SECRET = "test-canary-scale-hook-5d2f"
LEASE_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL ledger database (this test needs PostgreSQL itself)."""
    server = _postgres_server_url()
    if not server:
        pytest.skip("CLEANDAY_TEST_POSTGRES_URL is empty: the scale-out test needs PostgreSQL")
    name = f"cleanday_scale_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(server), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(drivername="postgresql+psycopg", database=name)
    url_s = url.render_as_string(hide_password=False)
    try:
        engine = make_engine(url_s)
        migrate(engine)
        engine.dispose()
        yield url_s
    finally:
        with psycopg.connect(_admin_dsn(server), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _seed_a_sunday_candidate(url: str, tmp_path: Path, sunday: date) -> None:
    """`tagger`: seven clean days in the week before `sunday`, its review posted and marked
    Promote; the Sunday close (which the instances' clocks catch up on) promotes it."""
    clock = FakeClock(datetime.combine(sunday - timedelta(days=13), datetime.min.time(), UTC))
    engine = make_engine(url)
    svc = LedgerService(engine, clock=clock)
    svc.register(write_work_order(tmp_path, "tagger"))
    first = sunday - timedelta(days=13)
    for i in range(7):
        d = first + timedelta(days=i)
        noon = datetime.combine(d, datetime.min.time(), UTC) + timedelta(hours=12)
        clock.set(noon)
        svc.report_run(report("tagger", f"tagger-{d}", noon))
        clock.set(noon + timedelta(hours=12, minutes=5))
        svc.close_day(d)
    clock.set(datetime.combine(sunday, datetime.min.time(), UTC) + timedelta(hours=10))
    svc.post_review(sunday)
    svc.decide("tagger", sunday, Decision.PROMOTE, by="ops")
    engine.dispose()


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cleanday.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def _until(what: str, ok: object, logs: list[Path], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (await ok() if asyncio.iscoroutinefunction(ok) else ok()):  # type: ignore[operator]
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {p.name}\n{p.read_text()[-3000:] if p.exists() else '(not started)'}"
                for p in logs
            )
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        await asyncio.sleep(0.2)


def _count(engine: sa.Engine, query: sa.Select[tuple[int]]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _signed(body: bytes, at: datetime) -> dict[str, str]:
    headers = sign(HOOK_SECRET.encode(), body, int(at.timestamp()))
    return {**headers, "content-type": "application/json"}


@pytest.mark.asyncio(loop_scope="module")
async def test_two_services_and_two_workers_share_one_ledger_and_count_every_run_once(
    dev_env: WorkflowEnvironment, postgres_url: str, tmp_path: Path, provider_url: str
) -> None:
    today = datetime.now(UTC).date()
    sunday = last_sunday_before(today)
    _seed_a_sunday_candidate(postgres_url, tmp_path, sunday)
    engine = make_engine(postgres_url)

    behaviors = tmp_path / "behaviors"
    behaviors.mkdir()
    trigger = {"type": "webhook", "secret_ref": "env:SCALE_HOOK_SECRET"}
    raw = work_order("burst_notes", trigger=trigger)
    (behaviors / "burst_notes.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    base = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "CLEANDAY_TOKEN": TOKEN,
        "CLEANDAY_TASK_QUEUE": queue,
        "CLEANDAY_TIMEZONE": "UTC",
        "CLEANDAY_BEHAVIORS_DIR": str(behaviors),
        "CLEANDAY_LOCAL_PROVIDER_URL": provider_url,
        "CLEANDAY_LOG_FORMAT": "json",
        "SCALE_HOOK_SECRET": HOOK_SECRET,
        "TEST_KEY_BURST_NOTES": "test-canary-burst-key",
    }
    ports = [_free_port(), _free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    service_logs = [tmp_path / f"service-{i}.log" for i in (1, 2)]
    worker_logs = [tmp_path / f"worker-{i}.log" for i in (1, 2)]
    logs = service_logs + worker_logs
    services = [
        _spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(port), "--scheduler"],
            {**base, "CLEANDAY_DATA_DIR": str(tmp_path / f"service-{i}")},
            log,
        )
        for i, (port, log) in enumerate(zip(ports, service_logs, strict=True), 1)
    ]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with httpx.AsyncClient(timeout=30) as http:

            async def both_ready() -> bool:
                try:
                    answers = [await http.get(f"{u}/readyz") for u in urls]
                except httpx.TransportError:
                    return False
                return all(a.status_code == 200 for a in answers)

            await _until("both services ready", both_ready, logs)

            # -- both clocks caught up on start: one day close, one Sunday close, one promotion.
            # The catch-up closes in date order and goes on past the Sunday to yesterday, so
            # wait for yesterday's close too (on a Wednesday that is two days after the Sunday).
            # An instance that starts after the other has closed everything finds nothing owed.
            keys = [f"day_close:{today - timedelta(days=1)}", f"sunday_close:{sunday}"]

            def both_closed() -> bool:
                ran = [
                    "catching up:" in text or "caught up: every day before" in text
                    for text in (p.read_text() for p in service_logs)
                ]
                done = sa.select(sa.func.count()).where(T_JOBS.c.job_key.in_(keys))
                return all(ran) and _count(engine, done) == len(keys)

            await _until("both instances' catch-up closes", both_closed, logs)
            for key in keys:
                assert (
                    _count(engine, sa.select(sa.func.count()).where(T_JOBS.c.job_key == key)) == 1
                )
            promoted = sa.select(sa.func.count()).where(
                T_ENTRIES.c.behavior == "tagger", T_ENTRIES.c.kind == "promoted"
            )
            assert _count(engine, promoted) == 1
            notices = sa.select(sa.func.count()).where(T_OUTBOX.c.kind == "promotion_notice")
            assert _count(engine, notices) == 1
            state = (await http.get(f"{urls[1]}/api/v1/behaviors/tagger/state")).json()
            assert state["tier"] == Tier.B.value

            # -- two workers, each on its own instance, sharing their data dir
            shared = tmp_path / "worker-data"
            for i, log in enumerate(worker_logs):
                env = {**base, "CLEANDAY_URL": urls[i], "CLEANDAY_DATA_DIR": str(shared)}
                workers.append(_spawn(["worker"], env, log))
            auth = {"Authorization": f"Bearer {TOKEN}"}

            async def registered() -> bool:
                r = await http.get(f"{urls[0]}/api/v1/behaviors/burst_notes/state", headers=auth)
                return r.status_code == 200

            await _until("the workers registered burst_notes", registered, logs)
            forced = {"reason": "acts at C", "kind": "forced_tier", "tier": "C"}
            r = await http.post(
                f"{urls[0]}/api/v1/behaviors/burst_notes/override", json=forced, headers=auth
            )
            assert r.is_success, r.text
            # every model call takes a moment, so the kill lands while steps are in flight
            provider = provider_url.removesuffix("/v1")
            fault = {"behavior": "burst_notes", "fault": "slow", "count": BURST, "delay_s": 0.3}
            (await http.post(f"{provider}/_control/faults", json=fault)).raise_for_status()

            # -- the burst: 500 signed deliveries, alternating between the instances
            now = datetime.now(UTC)
            bodies = [json.dumps({"n": i, "note": f"n{i}"}).encode() for i in range(BURST)]
            sem = asyncio.Semaphore(32)

            async def deliver(i: int) -> int:
                async with sem:
                    url = f"{urls[i % 2]}/hooks/burst_notes"
                    r = await http.post(url, content=bodies[i], headers=_signed(bodies[i], now))
                    return r.status_code

            runs = (
                sa.select(sa.func.count())
                .select_from(T_RUNS)
                .where(T_RUNS.c.behavior == "burst_notes")
            )
            sending = asyncio.gather(*(deliver(i) for i in range(BURST)))
            await _until("runs under way", lambda: _count(engine, runs) >= 50, logs, 120)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            reported_at_kill = _count(engine, runs)
            statuses = await sending
            assert statuses == [202] * BURST
            assert reported_at_kill < BURST  # the kill landed mid-burst

            # -- a replay of a delivery the first instance took, sent to the second: refused
            replay = await http.post(
                f"{urls[1]}/hooks/burst_notes", content=bodies[0], headers=_signed(bodies[0], now)
            )
            assert replay.status_code == 409, replay.text

            await _until("every run reported", lambda: _count(engine, runs) >= BURST, logs, 150)
            distinct = sa.select(sa.func.count(sa.distinct(T_RUNS.c.run_id))).where(
                T_RUNS.c.behavior == "burst_notes"
            )
            reported = sa.select(sa.func.count()).where(
                T_ENTRIES.c.behavior == "burst_notes", T_ENTRIES.c.kind == "run_reported"
            )
            await asyncio.sleep(1.0)  # a second report of any run would land by now
            assert _count(engine, runs) == BURST
            assert _count(engine, distinct) == BURST
            assert _count(engine, reported) == BURST

            # -- and every run's workflow ends, the SIGKILLed worker's too: none left retrying a
            # report the ledger already holds (its lost workflow task ran again on the other)
            async def workflows(status: str) -> int:
                query = f'TaskQueue = "{queue}" AND ExecutionStatus = "{status}"'
                return len([w async for w in dev_env.client.list_workflows(query)])

            async def none_running() -> bool:
                return await workflows("Running") == 0

            await _until("every run's workflow ended", none_running, logs, 90)
            assert await workflows("Completed") == BURST

            # -- both instances report the database's figures, the same on each
            figures = []
            for u in urls:
                text = (await http.get(f"{u}/metrics")).text
                figures.append(
                    sum(
                        float(ln.rsplit(" ", 1)[1])
                        for ln in text.splitlines()
                        if ln.startswith('cleanday_runs_total{behavior="burst_notes"')
                    )
                )
            assert figures == [BURST, BURST]
            # their logs are JSON lines, and no line shows the operator token
            text = worker_logs[1].read_text()
            lines = [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]
            assert lines and all("message" in ln for ln in lines)
            assert TOKEN not in worker_logs[1].read_text() + service_logs[0].read_text()
    finally:
        _stop(workers + services)
        engine.dispose()


def test_exactly_one_outbox_drainer_is_active(
    postgres_url: str, slack_server: SlackServer, tmp_path: Path
) -> None:
    """Two ledger service instances on one PostgreSQL ledger, both draining the outbox on their
    clocks: one holds the lease and delivers every Slack alert; SIGKILLed, it stops renewing,
    and the other takes over within the lease's duration (and one poll); every alert is in Slack
    exactly once, in order per channel."""
    engine = make_engine(postgres_url)
    clock = FakeClock(datetime.now(UTC))
    env = {
        **os.environ,
        **slack_server.env(),
        "DATABASE_URL": postgres_url,
        "CLEANDAY_TOKEN": TOKEN,
        "CLEANDAY_OUTBOX_LEASE_SECONDS": str(LEASE_S),
        "CLEANDAY_OUTBOX_POLL_SECONDS": "0.5",
        "CLEANDAY_SLACK_CHANNELS": ",".join(f"{b}={c}" for b, c in CHANNELS.items()),
        "CLEANDAY_SLACK_GROUP_WAIT_SECONDS": "0",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",  # nobody: no wake-ups here
    }
    logs = [tmp_path / f"service-{i}.log" for i in (1, 2)]
    services = [
        _spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(_free_port())],
            {**env, "CLEANDAY_DATA_DIR": str(tmp_path / f"service-{i}")},
            log,
        )
        for i, log in enumerate(logs, 1)
    ]
    lease = Lease(engine, holder="the test, which only reads")

    def holder_index() -> int | None:
        holder, expires_at = lease.current_holder()
        if holder is None or expires_at is None or expires_at <= datetime.now(UTC):
            return None
        pid = int(holder.split(":")[1])
        return next((i for i, p in enumerate(services) if p.pid == pid), -1)

    def waiting() -> int:
        return sum(w.rows for w in outbox_admin.waiting(engine) if w.channel == "slack")

    def until(what: str, done: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {p.name}\n{p.read_text()[-3000:] if p.exists() else '(not started)'}"
                    for p in logs
                )
                raise AssertionError(f"timed out waiting for {what}\n{tails}")
            time.sleep(0.1)

    try:
        # -- a first batch: one instance takes the lease and delivers it all; the other never
        with engine.begin() as conn:
            outbox.write(conn, [alert(i, clock) for i in range(20)], clock())
        until("the first batch in Slack", lambda: waiting() == 0)
        first = holder_index()
        assert first in (0, 1), f"the lease is held by neither instance: {lease.current_holder()}"
        other = 1 - first
        for _ in range(int(LEASE_S * 2 / 0.25)):  # two lease durations: it stays where it is
            assert holder_index() == first
            time.sleep(0.25)
        said = [p.read_text().count("drains the outbox now") for p in logs]
        assert said[first] == 1 and said[other] == 0, said

        # -- the holder dies with a second batch waiting; the other takes over in time
        with engine.begin() as conn:
            outbox.write(conn, [alert(i, clock) for i in range(20, 40)], clock())
        services[first].send_signal(signal.SIGKILL)
        services[first].wait(10)
        killed = time.monotonic()
        until("the other instance to take the lease", lambda: holder_index() == other, 30)
        took = time.monotonic() - killed
        # its lease runs out at most LEASE_S after its last renewal (before the kill); the
        # other asks at its next poll
        assert took <= LEASE_S + 1.5, f"took {took:.1f} s for a {LEASE_S} s lease"
        until("the second batch in Slack", lambda: waiting() == 0)
        assert logs[other].read_text().count("drains the outbox now") == 1
        delivered_once_in_order(engine, slack_server)
        assert services[other].poll() is None
    finally:
        _stop(services)
        engine.dispose()
