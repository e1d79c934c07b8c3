"""The Pane of Glass in a real browser: Debian's Chromium driven by Playwright against the
ledger service on a loopback port, with a real run on Temporal's time-skipping server.

The scenario of the issue, in order: load the Pane with 50 behaviors; filter; open a behavior;
approve a proposal and see its run act; press Promote on a Sunday candidate and see the ledger
change at the close (the ledger's clock is injected: a Sunday evening, then Monday); sign out
and see actions refused.

Chromium is /usr/bin/chromium, installed by `scripts/test` (never `playwright install`); it
runs with a fresh profile and the flags that keep it from calling home on a closed network.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from cleanday.config import Settings
from cleanday.domain import Status, Tier
from cleanday.ledger import LedgerService, RunReport
from cleanday.ledger_client import LedgerClient
from cleanday.registration import parse_work_order
from cleanday.router import Router
from cleanday.runtime import wakeups
from cleanday.runtime.activities import RuntimeDeps
from cleanday.runtime.worker import create_worker
from cleanday.scheduler import sunday_close_job
from cleanday.sinks import FileSink
from tests.temporal.harness import TOKEN, Stack, ledger_app, work_order

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def next_sunday_evening() -> datetime:
    """18:00 UTC on the first Sunday after today: the run's own (real) time lies before it."""
    today = datetime.now(UTC).date()
    sunday = today + timedelta(days=(6 - today.weekday()) or 7)
    return datetime(sunday.year, sunday.month, sunday.day, 18, 0, tzinfo=UTC)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app on a free loopback port, in a thread of its own."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the ledger service did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@asynccontextmanager
async def worker_on(
    client: Client, url: str, data_dir: Path, provider_url: str
) -> AsyncIterator[Stack]:
    """A worker whose ledger client speaks HTTP to the served app (as a worker process does)."""
    settings = Settings(
        CLEANDAY_TOKEN=TOKEN, CLEANDAY_DATA_DIR=data_dir, CLEANDAY_LOCAL_PROVIDER_URL=provider_url
    )
    db_url = f"sqlite:///{data_dir / 'ledger.db'}"
    router = Router.from_settings(settings.model_copy(update={"database_url": db_url}))
    async with LedgerClient(url, TOKEN) as ledger:
        stack = Stack(client, ledger, router, data_dir, f"pane-{uuid.uuid4().hex[:8]}")
        deps = RuntimeDeps(
            ledger=ledger,
            work_orders=stack.work_orders,
            model_for=stack.model_for,
            sink=FileSink(data_dir),
            data_dir=data_dir,
        )
        worker: Worker = create_worker(client, deps, stack.task_queue, sandboxed=True)
        async with worker:
            yield stack


def seed(service: LedgerService, clock: Clock, sunday: datetime) -> None:
    """48 behaviors (every fourth at B), one of them `ready`, a candidate with 8 clean days."""
    for i in range(48):
        name = "ready" if i == 0 else f"behavior_{i:02d}"
        text = yaml.safe_dump(work_order(name))
        clock.now = sunday - timedelta(days=10)
        service.register_work_order(parse_work_order(text, name), name, text=text)
        if i % 4 == 3:
            service.override(name, "trusted", kind="forced_tier", tier=Tier.B)
    for day in range(9, 0, -1):
        at = sunday - timedelta(days=day)
        clock.now = at
        service.report_run(
            RunReport(
                behavior="ready",
                run_id=f"ready-{day}",
                started_at=at - timedelta(minutes=1),
                finished_at=at,
                outcome="proposed",
                cost_usd=0.0,
            )
        )
        service.approve("ready", None)
    clock.now = sunday


async def rows(page: Page) -> list[str]:
    return await page.locator("table.behaviors tbody th a").all_inner_texts()


async def test_the_pane_in_a_real_browser(
    ts_env: WorkflowEnvironment, tmp_path: Path, provider_url: str
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            "the Pane's browser test needs Debian's Chromium at /usr/bin/chromium: "
            "./scripts/test installs it (apt-get install -y chromium)",
            pytrace=False,
        )
    sunday = next_sunday_evening()
    clock = Clock(sunday)
    data_dir = tmp_path / "data"
    app = ledger_app(data_dir, clock=clock)
    service: LedgerService = app.state.service
    seed(service, clock, sunday)
    target = ts_env.client.service_client.config.target_host

    async def connect() -> Client:
        return await Client.connect(target)

    delivery = wakeups.attach(app, app.state.settings, connect)  # approvals wake their runs
    with serving(app) as url:
        async with (
            worker_on(ts_env.client, url, data_dir, provider_url) as stack,
            async_playwright() as pw,
        ):
            await stack.register(work_order("notes"))
            await stack.register(work_order("other"))  # 50 behaviors
            handle = await stack.start("notes")
            await stack.wait_for(handle, "batch approval")
            browser = await pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=str(CHROMIUM),
                args=CHROMIUM_FLAGS,
                headless=True,
            )
            page = await browser.new_page()

            # 1. the Pane with 50 behaviors (readable on loopback without signing in)
            await page.goto(url + "/")
            assert len(await rows(page)) == 50
            assert "Sign in to act" in await page.inner_text("header")

            # 2. filter: tier B only
            await page.check("input[name=tier][value=B]")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**/?tier=B*")
            shown = await rows(page)
            assert len(shown) == 12 and "ready" not in shown
            tiers = await page.locator(
                "table.behaviors tbody td[data-label=Tier]"
            ).all_inner_texts()
            assert set(tiers) == {"B"}

            # 3. open a behavior
            await page.goto(url + "/")
            await page.click("table.behaviors a[href='/behaviors/notes']")
            await page.wait_for_url("**/behaviors/notes")
            assert "notes" in await page.inner_text("h1")
            assert await page.locator("svg.chart").count() == 2  # streak and spend

            # 4. sign in, approve the proposal and see its run act
            await page.click("text=Sign in")
            await page.fill("#token", TOKEN)
            await page.click("form.stack button[type=submit]")
            await page.wait_for_url("**/behaviors/notes")
            assert "Signed in." in await page.inner_text(".flash")
            proposal = page.locator("article.item-card")
            assert handle.id in await proposal.inner_text()
            await proposal.locator("button", has_text="Approve").click()
            await page.wait_for_load_state()
            assert f"Approved {handle.id} of notes" in await page.inner_text(".flash")
            state = await asyncio.wait_for(handle.result(), 60)
            assert state.acted and state.decision == "approved"
            assert stack.sink_files("notes") == [f"{handle.id}.txt"]
            await page.reload()
            assert f"{handle.id}: approved by operator" in await page.inner_text("main")

            # 5. Promote a Sunday candidate; the close (Monday 00:01) promotes it
            await page.goto(url + "/review")
            candidate = page.locator("li.candidate-row", has_text="ready")
            await candidate.locator("button", has_text="Promote").click()
            await page.wait_for_load_state()
            assert "Promote recorded for ready" in await page.inner_text(".flash")
            assert service.state("ready").tier is Tier.A  # nothing moves before the close
            clock.now = sunday.replace(hour=0, minute=1) + timedelta(days=1)
            closed = sunday_close_job(service, ZoneInfo("UTC"), clock)
            assert closed.promoted == ["ready"]
            await page.goto(url + "/behaviors/ready")
            assert (await page.inner_text("h1 .tier")) == "B"
            assert "A → B" in await page.inner_text("ol.timeline")

            # 6. sign out; an action from a page loaded before is refused, and nothing changes
            other = await browser.new_page()
            await other.goto(url + "/behaviors/other")
            await page.locator("header button", has_text="Sign out").click()
            await page.wait_for_url("**/signin*")
            await other.locator("button", has_text="Pause").click()
            await other.wait_for_load_state()
            assert "Sign in to act" in await other.inner_text("main")
            assert service.state("other").status is Status.ACTIVE
            await page.goto(url + "/behaviors/other")
            assert await page.locator("button", has_text="Pause").count() == 0
            await browser.close()
    delivery.close()
