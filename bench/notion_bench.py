"""Notion sync benchmark: 1,000 state changes delivered to the fake Notion enforcing 3 requests/s
(a burst of 3), through the outbox and the Notion sender with the real notion-client, paced by
the shared slots in the ledger database.

The ledger (SQLite in a temp dir) registers 20 behaviors and then pauses and resumes them in
turn, each change its own transaction and its own Promotion Ledger row message. The delivery
starts once all 1,000 are queued (a burst, as after an outage). It prints the requests/s
achieved against the limit, overall and per window of 100 requests (min / median / max), the
429 answers (target: none) and the requests per state change (target: one).

    python bench/notion_bench.py                  # 1,000 state changes (about 6 minutes)
    python bench/notion_bench.py --quick          # 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.notion import NotionServer  # noqa: E402

from cleanday.config import Settings  # noqa: E402
from cleanday.db import make_engine, migrate  # noqa: E402
from cleanday.domain import Policy  # noqa: E402
from cleanday.ledger import LedgerService  # noqa: E402
from cleanday.notion.client import sync_client  # noqa: E402
from cleanday.notion.sender import CHANNEL, notion_sender  # noqa: E402
from cleanday.notion.setup import init  # noqa: E402
from cleanday.notion.store import NotionStore  # noqa: E402
from cleanday.outbox import OutboxDelivery  # noqa: E402

LIMIT = 3.0
TARGET = 2.7
BEHAVIORS = 20


def _work_order(directory: Path, name: str) -> Path:
    path = directory / f"{name}.yaml"
    wo = {
        "name": name,
        "description": f"{name}: a benchmark behavior",
        "trigger": {"type": "cron", "cron": "0 7 * * *", "timezone": "UTC"},
        "reports": "what it did",
        "key": {"ref": f"env:BENCH_KEY_{name.upper()}", "cap_usd": 5.0},
        "preset": {"name": f"{name}-preset", "model": "local/echo"},
        "gates": [{"name": "budget"}],
        "entry": "tests.integration.ledger_fixtures:noop_step",
    }
    path.write_text(yaml.safe_dump(wo, sort_keys=False))
    return path


def queue_changes(svc: LedgerService, directory: Path, changes: int) -> int:
    names = [f"bench_{i:02d}" for i in range(BEHAVIORS)]
    for name in names:
        svc.register(_work_order(directory, name))
    made, paused = len(names), set()
    while made < changes:
        name = names[made % len(names)]
        if name in paused:
            svc.resume(name, by="bench")
            paused.discard(name)
        else:
            svc.pause(name, by="bench")
            paused.add(name)
        made += 1
    return made


async def drain_all(delivery: OutboxDelivery) -> int:
    sent = 0
    while True:
        done = await delivery.drain(CHANNEL)
        if not done:
            return sent
        failed = [d for d in done if not d.ok]
        if failed:
            raise SystemExit(f"a row was not delivered: {failed[0].error}")
        sent += len(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 state changes")
    args = parser.parse_args()
    changes = 100 if args.quick else args.changes

    with tempfile.TemporaryDirectory(prefix="notion-bench-") as tmp, NotionServer() as server:
        engine = make_engine(f"sqlite:///{tmp}/ledger.db")
        migrate(engine)
        settings = Settings(**server.env())  # type: ignore[arg-type]
        client = sync_client(settings, None)
        init(client, NotionStore(engine), server.add_page("Cleanday"))
        client.close()
        ticks = iter(range(10**9))
        start = datetime(2026, 11, 9, 9, tzinfo=UTC).timestamp()

        def clock() -> datetime:  # a second per call: every change is at its own time
            return datetime.fromtimestamp(start + next(ticks), UTC)

        svc = LedgerService(engine, Policy(timezone="UTC"), clock)
        queued = queue_changes(svc, Path(tmp), changes)
        time.sleep(1.0)  # the server's burst refills after init's requests
        server.clear_requests()

        delivery = OutboxDelivery(engine, {CHANNEL: notion_sender(settings, engine)})
        started = time.monotonic()
        sent = asyncio.run(drain_all(delivery))
        elapsed = time.monotonic() - started
        received = server.requests()
        statuses = [r.status for r in received]
        stamps = sorted(r.at.timestamp() for r in received)
        windows = [100 / (stamps[i + 100] - stamps[i]) for i in range(0, len(stamps) - 100, 100)]
        rows = len(server.rows("Promotion Ledger"))
        engine.dispose()

    rps = len(received) / elapsed
    print(f"state changes queued {queued}, delivered {sent}, Notion rows {rows}")
    print(f"requests {len(received)} ({len(received) / sent:.2f} per state change), "
          f"429 answers {statuses.count(429)}, other errors "
          f"{sum(1 for s in statuses if s >= 400 and s != 429)}")  # fmt: skip
    print(
        f"elapsed {elapsed:.1f} s: {rps:.2f} requests/s against the limit {LIMIT:.1f} "
        f"({rps / LIMIT:.0%}); target >= {TARGET}: {'meets' if rps >= TARGET else 'MISSES'}"
    )
    if windows:
        print(f"per 100 requests: min / median / max {min(windows):.2f} / "
              f"{statistics.median(windows):.2f} / {max(windows):.2f} requests/s")  # fmt: skip


if __name__ == "__main__":
    main()
