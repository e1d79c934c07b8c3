"""On a real dev server: a behavior's Temporal Schedule follows its registration and status at
once, through the registration's reaction (outbox channel "temporal"), with no worker."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cleanday.ledger_client import LedgerClient
from cleanday.runtime import schedules, wakeups
from tests.temporal.harness import TOKEN, ledger_app, work_order

pytestmark = [pytest.mark.temporal, pytest.mark.asyncio(loop_scope="module")]


async def test_a_registered_cron_behavior_has_its_schedule_before_registration_answers(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    app = ledger_app(tmp_path / "data")

    async def connect() -> Client:  # on the delivery's own loop, as in the service
        return await Client.connect(dev_env.client.service_client.config.target_host)

    wakeups.attach(app, app.state.settings, connect)
    raw = work_order("fresh_cron", trigger={"type": "cron", "cron": "0 7 * * *", "timezone": "UTC"})
    transport = httpx.ASGITransport(app=app)
    async with LedgerClient("http://ledger", TOKEN, transport=transport) as ledger:
        await ledger.register(yaml.safe_dump(raw, sort_keys=False))
        # no worker runs, no sync loop: the registration's own reaction made the schedule
        handle = dev_env.client.get_schedule_handle(schedules.schedule_id("fresh_cron"))
        desc = await handle.describe()
        assert not desc.schedule.state.paused
        await ledger.set_status("fresh_cron", "pause")
        assert (await handle.describe()).schedule.state.paused
        await ledger.set_status("fresh_cron", "retire")
    with pytest.raises(Exception, match="not found"):
        await handle.describe()


async def test_a_revived_behavior_has_its_schedule_back_at_once(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    app = ledger_app(tmp_path / "data")

    async def connect() -> Client:
        return await Client.connect(dev_env.client.service_client.config.target_host)

    wakeups.attach(app, app.state.settings, connect)
    raw = work_order("back_cron", trigger={"type": "cron", "cron": "0 7 * * *", "timezone": "UTC"})
    text = yaml.safe_dump(raw, sort_keys=False)
    transport = httpx.ASGITransport(app=app)
    handle = dev_env.client.get_schedule_handle(schedules.schedule_id("back_cron"))
    async with LedgerClient("http://ledger", TOKEN, transport=transport) as ledger:
        await ledger.register(text)
        await ledger.set_status("back_cron", "retire")
        with pytest.raises(Exception, match="not found"):
            await handle.describe()
        revived = await ledger.register(text, revive=True)
        assert (revived["status"], revived["tier"]) == ("revived", "A")
        assert not (await handle.describe()).schedule.state.paused
