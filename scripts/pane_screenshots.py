"""Screenshots of the Pane of Glass for the README: the overview, a behavior's page and the
Sunday review (and the overview on a phone), in docs/pane-*.png.

    .venv/bin/python scripts/pane_screenshots.py [--out docs]

A ledger is made up in a temporary directory — a dozen behaviors with five weeks of runs,
proposals, a staged item, a quarantine, spend — with the clock set on a Sunday morning, served
on a free loopback port, signed in to, and photographed with Debian's Chromium
(/usr/bin/chromium; `apt-get install chromium`), the browser the Pane's browser test drives.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import uvicorn
from playwright.sync_api import sync_playwright
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cleanday.budget import SpendStore  # noqa: E402
from cleanday.config import Settings  # noqa: E402
from cleanday.db import make_engine, migrate  # noqa: E402
from cleanday.domain import Decision, Tier  # noqa: E402
from cleanday.ledger import LedgerService, RunReport  # noqa: E402
from cleanday.models import T_OUTBOX  # noqa: E402
from cleanday.registration import parse_work_order  # noqa: E402
from cleanday.router.tables import RoutingBinding  # noqa: E402
from cleanday.service import create_app  # noqa: E402

TOKEN = "screenshot-token"
CHROMIUM = "/usr/bin/chromium"
# the flags the browser test uses: no sandbox (root), and no calls home on a closed network
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
SUNDAY = date(2026, 11, 8)
START = SUNDAY - timedelta(days=35)

# name, description, trigger, final tier, daily runs, what can go wrong
BEHAVIORS = [
    ("publish_posts", "publishes the approved blog drafts", "0 9 * * *", Tier.C, 2, None),
    ("seo_audit", "audits the site's pages for SEO problems", "0 6 * * 1", Tier.B, 1, None),
    ("morning_digest", "pulls the morning's API data into Notion", "30 6 * * *", Tier.A, 1, None),
    ("webhook_logger", "logs incoming webhooks as notes", None, Tier.WINGS, 3, None),
    ("tag_articles", "tags new articles from a fixed list", "0 */4 * * *", Tier.B, 2, "schema"),
    ("model_roll_call", "asks each model its name", "0 8,20 * * *", Tier.A, 2, "once"),
    ("newsletter_draft", "drafts the weekly newsletter", "0 10 * * 5", Tier.A, 1, None),
    ("price_watch", "watches competitor prices", "15 * * * *", Tier.C, 2, "anomaly"),
    ("support_triage", "sorts support mail into queues", "*/30 * * * *", Tier.A, 2, "pii"),
    ("sitemap_refresh", "rebuilds the sitemap", "0 3 * * *", Tier.B, 1, None),
    ("changelog_notes", "writes release notes", "0 17 * * 1-5", Tier.A, 1, "anomaly"),
    ("archive_sweeper", "archives stale drafts", "0 2 * * 0", Tier.A, 1, "retired"),
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def work_order(name: str, description: str, cron: str | None) -> str:
    trigger = (
        f'{{type: cron, cron: "{cron}", timezone: UTC}}'
        if cron
        else "{type: webhook, secret_ref: env:HOOK_SECRET}"
    )
    return f"""\
name: {name}
description: {description}
trigger: {trigger}
reports: what it did, in a sentence
key: {{ref: "env:KEY_{name.upper()}", cap_usd: {random.choice([5, 10, 20])}}}
preset: {{name: {name}, model: anthropic/claude-haiku, fallback_models: [openai/gpt-4o-mini]}}
entry: "behaviors.content_pipeline:run"
"""


def seed(service: LedgerService, clock: Clock, engine: object) -> None:
    rng = random.Random(7)
    random.seed(7)
    spend = SpendStore(service.engine, clock=clock)
    clock.now = datetime.combine(START, datetime.min.time(), UTC) + timedelta(hours=8)
    for name, desc, cron, _, _, _ in BEHAVIORS:
        text = work_order(name, desc, cron)
        wo = parse_work_order(text, name)
        service.register_work_order(wo, f"behaviors/{name}.yaml", text=text)
        with Session(service.engine) as s:
            s.add(
                RoutingBinding(
                    behavior=name,
                    key_ref=wo.key.ref,
                    cap_usd=wo.key.cap_usd,
                    cadence=wo.key.cadence,
                    transports=["openrouter", "anthropic"],
                    guardrails={},
                    bound_at=clock.now,
                    updated_at=clock.now,
                )
            )
            s.commit()
    # each behavior reaches its tier a week or three ago, then runs
    for name, _, _, tier, _, _ in BEHAVIORS:
        if tier is not Tier.A:
            clock.now += timedelta(minutes=1)
            service.override(name, "trusted from the start", kind="forced_tier", tier=tier)
    n = 0
    day = START
    while day < SUNDAY:
        for name, _, _, tier, per_day, trouble in BEHAVIORS:
            for k in range(per_day):
                n += 1
                at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
                    hours=7 + 5 * k, minutes=rng.randrange(50)
                )
                clock.now = at
                gates = [
                    {"name": "budget", "passed": True, "reason": ""},
                    {"name": "policy", "passed": True, "reason": ""},
                    {"name": "sensitive_info", "passed": True, "reason": ""},
                ]
                anomalies = []
                days_left = (SUNDAY - day).days
                if trouble == "schema" and days_left == 4 and k == 0:
                    gates.append(
                        {"name": "schema", "passed": False, "reason": "tag 'crypto' not allowed"}
                    )
                    gates[2] = {
                        "name": "sensitive_info",
                        "passed": False,
                        "reason": "email address in output",
                    }
                if trouble == "pii" and days_left in (5, 4, 2) and k == 0:
                    gates[2] = {
                        "name": "sensitive_info",
                        "passed": False,
                        "reason": "phone number in output",
                    }
                if trouble == "once" and days_left == 5 and k == 1:
                    gates.append(
                        {"name": "schema", "passed": False, "reason": "answer is not JSON"}
                    )
                if trouble == "anomaly" and days_left == 3 and k == per_day - 1:
                    anomalies.append({"name": "cost", "detail": "cost 4.1x the 14-day median"})
                failed = any(not g["passed"] for g in gates)
                outcome = {Tier.A: "proposed", Tier.B: "staged"}.get(tier, "succeeded")
                cost = round(rng.uniform(0.002, 0.03), 4)
                reservation = spend.reserve(name, cost, run_id=f"{name}-{n}")
                spend.settle(reservation, cost, transport="openrouter", model="claude-haiku")
                service.report_run(
                    RunReport(
                        behavior=name,
                        run_id=f"{name}-{day:%m%d}-{k}",
                        workflow_id=f"{name}-scheduled-{day:%Y-%m-%d}T{7 + 5 * k:02d}:00:00Z",
                        started_at=at - timedelta(seconds=20),
                        finished_at=at,
                        outcome="blocked" if failed else outcome,
                        gates=gates,
                        anomalies=anomalies,
                        cost_usd=cost,
                        model="anthropic/claude-haiku",
                        transport="openrouter",
                        latency_ms=rng.uniform(800, 2500),
                        output_size=rng.randrange(400, 900),
                        summary=_summary(name, tier),
                        items=_items(name, tier, day, k, failed),
                    )
                )
                if outcome == "proposed" and not failed and days_left > 1:
                    service.approve(name, None)
                if outcome == "staged" and not failed and days_left > 2:
                    service.release(name, f"{name}-{day:%m%d}-{k}")
        day += timedelta(days=1)
        clock.now = datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=5)
        service.close_day(day - timedelta(days=1))
    clock.now = datetime.combine(SUNDAY, datetime.min.time(), UTC) + timedelta(hours=9)
    service.post_review(SUNDAY)
    service.decide("morning_digest", SUNDAY, Decision.PROMOTE, by="operator")
    service.retire("archive_sweeper")
    clock.now += timedelta(hours=1, minutes=30)
    # no worker ran these runs, so no run waits for the wake-ups the sign-offs queued
    with service.engine.begin() as conn:
        conn.execute(sa.delete(T_OUTBOX).where(T_OUTBOX.c.channel == "temporal"))


def _summary(name: str, tier: Tier) -> str:
    if tier in (Tier.C, Tier.WINGS):
        return {"publish_posts": "2 posts published. No anomalies."}.get(
            name, "done. No anomalies."
        )
    return "drafted, waiting for your sign-off"


def _items(name: str, tier: Tier, day: date, k: int, failed: bool) -> list[dict[str, object]]:
    if failed or tier not in (Tier.A, Tier.B):
        return []
    item = f"{name}-{day:%m%d}-{k}"
    if name == "newsletter_draft":
        payload: dict[str, object] = {
            "summary": "Weekly newsletter drafted: 4 sections, 612 words.",
            "actions": [
                {
                    "kind": "send_email",
                    "target": "list:subscribers",
                    "payload": {
                        "subject": "This week: faster builds and a new API",
                        "sections": ["Highlights", "Releases", "From the blog", "Events"],
                    },
                }
            ],
        }
    elif name == "morning_digest":
        payload = {
            "summary": "Morning pull: 14 new records for the Notion digest.",
            "actions": [
                {
                    "kind": "notion_upsert",
                    "target": "Digest",
                    "payload": {"rows": 14, "source": "api.example/v2/metrics"},
                }
            ],
        }
    else:
        payload = {
            "summary": f"{name.replace('_', ' ')}: 1 change ready.",
            "actions": [{"kind": "write_file", "target": f"out/{item}.md", "payload": {}}],
        }
    return [{"id": item, "payload": payload}]


@contextmanager
def serving(app: object) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/ledger.db")
        migrate(engine)
        clock = Clock(datetime.now(UTC))
        service = LedgerService(engine, clock=clock)
        seed(service, clock, engine)
        settings = Settings(CLEANDAY_TOKEN=TOKEN, CLEANDAY_SCHEDULER=False, CLEANDAY_DATA_DIR=tmp)
        app = create_app(settings, service, scheduler=False)
        args.out.mkdir(parents=True, exist_ok=True)
        with serving(app) as url, sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                f"{tmp}/chromium",
                executable_path=CHROMIUM,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900},
                device_scale_factor=1,
            )
            page = context.new_page()
            page.goto(f"{url}/signin")
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            page.wait_for_url(f"{url}/")
            shots = {
                "pane-overview.png": "/",
                "pane-behavior.png": "/behaviors/tag_articles",
                "pane-review.png": "/review",
            }
            for file, path in shots.items():
                page.goto(url + path)
                page.screenshot(path=str(args.out / file), full_page=True)
                print(f"{args.out / file}")
            phone = context.new_page()
            phone.set_viewport_size({"width": 390, "height": 844})
            phone.goto(url + "/")
            phone.screenshot(path=str(args.out / "pane-phone.png"), full_page=False)
            print(f"{args.out / 'pane-phone.png'}")
            context.close()


if __name__ == "__main__":
    main()
