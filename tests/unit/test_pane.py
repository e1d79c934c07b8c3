"""The Pane's pure parts: when a behavior runs next, the streak chart's days, the charts."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from cleanday import ladder
from cleanday.domain import Entry, EntryKind, Policy
from cleanday.pane import charts
from cleanday.pane.behavior import streak
from cleanday.pane.next_runs import NextRun, NextRuns, from_trigger
from cleanday.pane.overview import Filters, progress

NOW = datetime(2026, 11, 4, 12, 30, tzinfo=UTC)  # a Wednesday


def test_a_cron_trigger_runs_next_at_its_next_firing_in_its_own_time_zone() -> None:
    berlin = {"type": "cron", "cron": "30 6 * * *", "timezone": "Europe/Berlin"}
    assert from_trigger(berlin, NOW) == NextRun(datetime(2026, 11, 5, 5, 30, tzinfo=UTC), "trigger")


def test_an_interval_trigger_fires_on_multiples_of_its_period_as_temporal_does() -> None:
    every_8h = {"type": "interval", "every_seconds": 8 * 3600}
    assert from_trigger(every_8h, NOW).at == datetime(2026, 11, 4, 16, 0, tzinfo=UTC)
    assert from_trigger({"type": "webhook", "secret_ref": "env:S"}, NOW) == NextRun(None, "webhook")


class FakeClient:
    def __init__(self, schedules: list[Any]) -> None:
        self.schedules = schedules
        self.listed = 0

    async def list_schedules(self) -> Any:
        self.listed += 1

        async def gen() -> Any:
            for s in self.schedules:
                yield s

        return gen()


def schedule(name: str, at: datetime | None, paused: bool = False) -> Any:
    return SimpleNamespace(
        id=f"cleanday-{name}",
        info=SimpleNamespace(next_action_times=[at] if at else []),
        schedule=SimpleNamespace(state=SimpleNamespace(paused=paused)),
    )


async def test_next_runs_come_from_temporals_schedules_once_listed_and_never_wait_for_it() -> None:
    temporal_says = NOW + timedelta(minutes=7)
    client = FakeClient([schedule("alpha", temporal_says), schedule("beta", None, paused=True)])

    async def connect() -> FakeClient:
        return client

    runs = NextRuns(connect, clock=lambda: NOW)
    cron = {"type": "cron", "cron": "0 7 * * *", "timezone": "UTC"}
    # before the listing: the trigger answers at once
    assert runs.lookup("alpha", cron, True, NOW).source == "trigger"
    runs.refresh_soon()
    runs.refresh_soon()  # a listing in flight is not started again
    await asyncio.sleep(0.01)
    assert client.listed == 1
    assert runs.lookup("alpha", cron, True, NOW) == NextRun(temporal_says, "temporal")
    assert runs.lookup("beta", cron, True, NOW) == NextRun(None, "paused")
    assert runs.lookup("alpha", cron, False, NOW) == NextRun(None, "paused")  # not active
    # a listing gone stale is not trusted over the trigger
    assert runs.lookup("alpha", cron, True, NOW + timedelta(hours=1)).source == "trigger"


async def test_temporal_down_falls_back_to_the_trigger_and_is_not_asked_again_at_once() -> None:
    attempts = 0

    async def connect() -> Any:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("Temporal is down")

    now = NOW
    runs = NextRuns(connect, clock=lambda: now)
    runs.refresh_soon()
    await asyncio.sleep(0.01)
    runs.refresh_soon()
    await asyncio.sleep(0.01)
    assert attempts == 1
    cron = {"type": "cron", "cron": "0 7 * * *", "timezone": "UTC"}
    assert runs.lookup("alpha", cron, True, now).source == "trigger"
    now = NOW + timedelta(minutes=1)  # past the ttl: tried again
    runs.refresh_soon()
    await asyncio.sleep(0.01)
    assert attempts == 2


def _run(name: str, at: datetime, failed: bool = False) -> Entry:
    gates = [{"name": "schema", "passed": not failed, "reason": "bad tag" if failed else ""}]
    return Entry(name, EntryKind.RUN_REPORTED, at, f"run:{at.isoformat()}", {"gates": gates})


def test_the_streak_is_the_ladders_clean_day_count_at_the_end_of_each_day() -> None:
    policy = Policy()
    start = datetime(2026, 10, 20, 9, tzinfo=UTC)
    entries = [Entry("a", EntryKind.REGISTERED, start, "registered:v1", {"version": 1})]
    for d in range(14):
        if d == 6:
            continue  # an idle day
        entries.append(_run("a", start + timedelta(days=d, hours=1), failed=d == 9))
    days = streak("a", entries, policy, NOW, days=20)
    assert len(days) == 20 and days[-1].on == date(2026, 11, 4)
    by_day = {d.on: d for d in days}
    assert by_day[date(2026, 10, 19)].kind == "before"
    assert by_day[date(2026, 10, 26)].kind == "idle"
    assert (
        by_day[date(2026, 10, 29)].kind == "broken" and by_day[date(2026, 10, 29)].clean_days == 0
    )
    assert by_day[date(2026, 11, 4)].kind == "open"
    for d in days:
        if d.clean_days is not None and d.kind != "open":
            end = datetime(d.on.year, d.on.month, d.on.day, tzinfo=UTC) + timedelta(days=1)
            expected = ladder.compute_state("a", entries, policy, end).clean_days
            assert d.clean_days == expected, d


def test_the_streak_chart_draws_a_bar_per_day_and_the_candidacy_line() -> None:
    policy = Policy()
    start = datetime(2026, 10, 25, 9, tzinfo=UTC)
    entries = [Entry("a", EntryKind.REGISTERED, start, "registered:v1", {"version": 1})]
    entries += [_run("a", start + timedelta(days=d, hours=1)) for d in range(9)]
    days = streak("a", entries, policy, NOW, days=14)
    chart = charts.streak_chart(days, progress("A", 8, policy).needed)
    assert len(chart.bars) == 14
    tallest = max(chart.bars, key=lambda b: b.height)
    assert "8 clean days" in tallest.title or "9 clean days" in tallest.title
    assert chart.line is not None and chart.line_label == "candidate at 7"
    assert all(b.y + b.height <= chart.baseline + 0.01 for b in chart.bars)


def test_filters_drop_what_they_do_not_know_and_keep_retired_out_unless_asked() -> None:
    f = Filters.parse(tiers=["B", "Z"], statuses=["paused", "gone"], page=-3, per_page=10_000)
    assert (f.tiers, f.statuses, f.page, f.per_page) == (("B",), ("paused",), 1, 500)
    assert Filters().query() == {}
    assert Filters.parse(tiers=["C"]).query(page=2) == {"tier": ["C"], "page": 2}
