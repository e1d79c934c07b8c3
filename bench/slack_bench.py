"""Slack delivery benchmark: alert latency, and the drain of a backlog after an outage, through
the outbox and the Slack sender (the real slack-sdk) against the fake Slack, which enforces
Slack's one message a second per channel (a burst of 3) and its method tiers.

(a) Latency. Gate failures are reported to the real LedgerService (SQLite in a temp dir); its
commit hook and the outbox job (APScheduler, every CLEANDAY_OUTBOX_POLL_SECONDS) deliver them
as in `cleanday serve`, with the delivery job's default settings. Each alert opens a group of
its own (a channel's alerts are rounds apart: the shared clock jumps past `close_after` between
rounds, the only simulated time in the bench), so each waits `group_wait` before its message:
the figure is the time from `report_run` to the fake Slack receiving `chat.postMessage`,
against the target p99 < 2 s + group_wait.

(b) Drain. A backlog of rows queued while Slack was away, across 20 channels, delivered by one
drain. Grouping is off, so that each row is its own message (the worst case for the limit:
with grouping on, a backlog of alerts goes out as a few digests). It prints messages/s achieved
against the limit (one a second per channel), the 429 answers, and whether every channel got
every row once, in ID order.

    python bench/slack_bench.py                       # 60 alerts; 5,000 rows (about 5 minutes)
    python bench/slack_bench.py --rows 1000           # a shorter drain
    python bench/slack_bench.py --group-wait 2        # a shorter group_wait (it is printed)
    python bench/slack_bench.py --only latency        # or: --only drain
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CLEANDAY_STEP_MODULES", "tests")  # the Work Orders' no-op step

from tests.fakes.slack import SlackServer  # noqa: E402
from tests.integration.ledger_fixtures import report, write_work_order  # noqa: E402

from cleanday import outbox  # noqa: E402
from cleanday.config import Settings  # noqa: E402
from cleanday.db import make_engine, migrate  # noqa: E402
from cleanday.domain import Policy  # noqa: E402
from cleanday.ledger import LedgerService  # noqa: E402
from cleanday.models import T_OUTBOX  # noqa: E402
from cleanday.outbox import Backoff, Message, OutboxDelivery  # noqa: E402
from cleanday.scheduler import outbox_job  # noqa: E402
from cleanday.slack_messages import Composer  # noqa: E402
from cleanday.slack_sender import SlackSender, grouping_of, route  # noqa: E402

CHANNELS = 20
PER_CHANNEL_LIMIT = 1.0  # Slack: about one message a second per channel
UI = "http://temporal-ui.bench:8233"


class ShiftedClock:
    """Wall-clock time plus an offset the bench moves forward between rounds, shared by the
    ledger, the delivery, the sender and the fake Slack (so groups close as if minutes passed)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _channel(i: int) -> str:
    return f"bench-{i:02d}"


def _rows_of(rec: Any) -> list[int]:
    meta = rec.body.get("metadata") if isinstance(rec.body, dict) else None
    if isinstance(meta, str):
        meta = json.loads(meta)
    return [int(i) for i in ((meta or {}).get("event_payload") or {}).get("rows") or []]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- (a) latency -------------------------------------------------------------------------------


def latency(samples: int, group_wait: float | None, tmp: Path) -> None:
    settings = Settings()
    if group_wait is not None:
        settings = settings.model_copy(update={"slack_group_wait_s": group_wait})
    grouping = grouping_of(settings)
    rounds = -(-samples // CHANNELS)
    clock = ShiftedClock()
    names = [f"lat_{i:03d}" for i in range(rounds * CHANNELS)][:samples]
    channels = {n: f"#{_channel(i % CHANNELS)}" for i, n in enumerate(names)}
    server = SlackServer(channels=tuple(_channel(i) for i in range(CHANNELS)), clock=clock)
    engine = make_engine(f"sqlite:///{tmp}/latency.db")
    migrate(engine)
    svc = LedgerService(engine, Policy(timezone="UTC"), clock)
    for n in names:
        svc.register(write_work_order(tmp, n))
    with server:
        sender = SlackSender(
            server.token, server.api_url, Composer(ZoneInfo("UTC"), UI),
            per_channel_s=settings.slack_pace_s, grouping=grouping, clock=clock,
        )  # fmt: skip
        delivery = OutboxDelivery(
            engine, {"slack": sender}, clock=clock,
            routes={"slack": route(settings.slack_channel, channels)},
            wait_for=set(),
            backoff=Backoff(settings.outbox_backoff_s, settings.outbox_backoff_max_s),
        )  # fmt: skip
        svc.subscribe(delivery.after_commit)
        jobs = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        jobs.add_job(outbox_job, IntervalTrigger(seconds=settings.outbox_poll_s), (delivery,))
        jobs.start()
        reported: dict[str, datetime] = {}
        try:
            for r in range(rounds):
                if r:
                    clock.offset += grouping.close_after + timedelta(minutes=1)
                batch = names[r * CHANNELS : (r + 1) * CHANNELS]
                for name in batch:  # spread over 5 s, one alert at a time
                    time.sleep(5.0 / len(batch))
                    reported[name] = clock()
                    svc.report_run(report(name, f"{name}-r{r}", clock(), failed_gate="schema"))
                _until_posted(server, len(reported), grouping.group_wait.total_seconds() + 30)
        finally:
            jobs.shutdown(wait=False)
            delivery.close()
        behavior_of = _behavior_of_rows(engine)
        lat: list[float] = []
        for rec in server.requests("chat.postMessage"):
            if rec.status != 200:
                continue
            for row in _rows_of(rec):
                name = behavior_of.get(row)
                if name in reported:
                    lat.append((rec.at - reported.pop(name)).total_seconds())
        statuses = [r.status for r in server.requests()]
    engine.dispose()
    wait_s = grouping.group_wait.total_seconds()
    p50, p99 = statistics.median(lat), _pct(lat, 0.99)
    target = 2.0 + wait_s
    print(f"(a) alert latency, report_run -> fake Slack receives chat.postMessage: {len(lat)} "
          f"alerts, {len(reported)} never arrived")  # fmt: skip
    which = " (default)" if group_wait is None else " (--group-wait; default 10 s)"
    print(
        f"    settings: group_wait {wait_s:g} s{which}, outbox poll {settings.outbox_poll_s:g} s,"
        f" pace {settings.slack_pace_s:g} s/channel"
    )
    verdict = "meets" if p99 < target and not reported else "MISSES"
    print(
        f"    p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(lat):.2f} s; "
        f"target p99 < 2 s + group_wait = {target:g} s: {verdict}"
    )
    print(f"    429 answers {statuses.count(429)}")


def _until_posted(server: SlackServer, count: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        posted = [r for r in server.requests("chat.postMessage") if r.status == 200]
        if len(posted) >= count:
            return
        time.sleep(0.05)


def _behavior_of_rows(engine: Any) -> dict[int, str]:
    o = T_OUTBOX.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(o.id, o.behavior).where(o.channel == "slack")).all()
    return {r.id: r.behavior for r in rows}


# -- (b) drain after an outage -----------------------------------------------------------------


def _backlog_row(i: int, at: datetime) -> Message:
    behavior = f"drain_{i % CHANNELS:02d}"
    return Message(
        "slack", "gate_failure_alert", f"gate_alert:{behavior}:run{i:05d}",
        {"behavior": behavior, "at": at.isoformat(), "run_id": f"run{i:05d}",
         "workflow_id": f"wf-run{i:05d}", "tier": "B",
         "gates": [{"name": "schema", "reason": f"run{i:05d} failed"}]},
        behavior,
    )  # fmt: skip


def drain(rows: int, tmp: Path) -> None:
    settings = Settings()
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
    server = SlackServer(channels=tuple(_channel(i) for i in range(CHANNELS)))
    engine = make_engine(f"sqlite:///{tmp}/drain.db")
    migrate(engine)
    queued_at = clock() - timedelta(hours=1)
    with engine.begin() as conn:
        outbox.write(conn, [_backlog_row(i, queued_at) for i in range(rows)], queued_at)
    channels = {f"drain_{i:02d}": f"#{_channel(i)}" for i in range(CHANNELS)}
    with server:
        sender = SlackSender(
            server.token, server.api_url, Composer(ZoneInfo("UTC"), UI),
            per_channel_s=settings.slack_pace_s, grouping=None,
        )  # fmt: skip
        delivery = OutboxDelivery(
            engine, {"slack": sender}, routes={"slack": route("#alerts", channels)},
            backoff=Backoff(settings.outbox_backoff_s, settings.outbox_backoff_max_s),
        )  # fmt: skip
        started = time.monotonic()
        delivered, failed = asyncio.run(_drain_all(delivery))
        elapsed = time.monotonic() - started
        posts = [r for r in server.requests("chat.postMessage") if r.status == 200]
        statuses = [r.status for r in server.requests()]
        in_order, once = _in_order(engine, server)
    engine.dispose()
    limit = PER_CHANNEL_LIMIT * CHANNELS
    rate = len(posts) / elapsed
    by_channel: dict[str, list[float]] = {}
    for p in posts:
        by_channel.setdefault(str(p.body.get("channel")), []).append(p.at.timestamp())
    per = [(len(s) - 1) / (max(s) - min(s)) for s in by_channel.values() if len(s) > 1]
    print(
        f"(b) drain after an outage: {rows} rows across {CHANNELS} channels (grouping off: one "
        f"message per row), delivered {delivered}, failed attempts {failed}"
    )
    print(f"    elapsed {elapsed:.1f} s: {rate:.2f} messages/s against the limit {limit:g} "
          f"({PER_CHANNEL_LIMIT:g}/s per channel x {CHANNELS}): {rate / limit:.0%}")  # fmt: skip
    if per:
        print(f"    per channel: min / median / max {min(per):.2f} / {statistics.median(per):.2f}"
              f" / {max(per):.2f} messages/s")  # fmt: skip
    print(f"    429 answers {statuses.count(429)}; every row once: {'yes' if once else 'NO'}; "
          f"in ID order per channel: {'yes' if in_order else 'NO'}")  # fmt: skip


async def _drain_all(delivery: OutboxDelivery) -> tuple[int, int]:
    delivered = failed = 0
    for _ in range(100):
        done = await delivery.drain()
        delivered += sum(1 for d in done if d.ok)
        failed += sum(1 for d in done if not d.ok)
        if not done:
            return delivered, failed
        if any(not d.ok for d in done):
            await asyncio.sleep(delivery.backoff.base_s)
    return delivered, failed


def _in_order(engine: Any, server: SlackServer) -> tuple[bool, bool]:
    o = T_OUTBOX.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(o.id, o.target).order_by(o.id)).all()
    in_order, listed_all = True, []
    for target in sorted({r.target for r in rows}):
        expected = [r.id for r in rows if r.target == target]
        messages = server.messages(target)
        listed = [i for m in messages for i in m["metadata"]["event_payload"]["rows"]]
        in_order &= listed == expected
        listed_all.extend(listed)
    once = sorted(listed_all) == [r.id for r in rows]
    return in_order, once


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=60, help="alerts for the latency figure")
    parser.add_argument("--group-wait", type=float, default=None,
                        help="seconds (default: the setting's default, 10)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=5000, help="backlog rows for the drain")
    parser.add_argument("--only", choices=("latency", "drain"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slack-bench-") as tmp:
        if args.only in (None, "latency"):
            latency(args.samples, args.group_wait, Path(tmp))
        if args.only in (None, "drain"):
            drain(args.rows, Path(tmp))


if __name__ == "__main__":
    main()
