"""The Notion clock jobs: during Sunday (ledger time zone) the review's decisions are read back
every few minutes, and once more just before the close (`cleanday.notion.reviews`); tier A's
pending proposals are posted as pages and their sign-offs read back
(`cleanday.notion.proposals`). A Notion webhook event moves the next read forward
(`read_soon`)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from cleanday.clock import local_date
from cleanday.config import Settings
from cleanday.ledger import LedgerService
from cleanday.notion.client import sync_client
from cleanday.notion.pacing import Pacing
from cleanday.notion.proposals import ProposalPages, behaviors_with_proposals
from cleanday.notion.reviews import ReadResult, ReviewReader
from cleanday.notion.store import NotionStore

log = logging.getLogger("cleanday.notion.jobs")

REVIEW_READ_JOB = "notion_review_read"
REVIEW_LAST_READ_JOB = "notion_review_last_read"
PROPOSALS_JOB = "notion_proposals"
# a burst of webhook events (a person editing several rows) is read once, this long after the
# first; the job's one instance at a time keeps a read from overlapping another
READ_SOON = timedelta(seconds=2)


def read_job(reader: ReviewReader, tz: ZoneInfo) -> ReadResult | None:
    """Read this Sunday's decisions; on any other day there is no open review to read."""
    today: date = local_date(reader.now(), tz)
    if today.weekday() != 6:
        return None
    result = reader.read(today)
    for behavior, decision, by in result.recorded:
        log.info("review %s: %s %s (%s)", today, behavior, decision, by)
    for behavior, decision, by in result.superseded:
        log.info("review %s: %s %s (%s) recorded, superseded by a later one", today, behavior,
                 decision, by)  # fmt: skip
    for behavior, why in result.skipped:
        log.warning("review %s: %s from Notion not recorded: %s", today, behavior, why)
    return result


def read_soon(scheduler: BaseScheduler, now: datetime) -> bool:
    """Move the next review read to `READ_SOON` after `now` (the scheduler's wall time) unless
    it comes sooner already, so every event until it runs joins that one read; after it, the
    reads go on every few minutes. False when this scheduler reads no review."""
    job = scheduler.get_job(REVIEW_READ_JOB)
    if job is None or job.next_run_time is None:  # no Notion token, or paused
        return False
    at = now + READ_SOON
    if job.next_run_time > at:
        job.modify(next_run_time=at)
    return True


def proposals_job(pages: ProposalPages) -> None:
    """Post the new pending proposals of every behavior that has some, and sign off what the
    operator checked on their pages."""
    for behavior in behaviors_with_proposals(pages.ledger.engine):
        pages.post(behavior)
        result = pages.read(behavior)
        if result.approved or result.rejected:
            log.info("%s: approved %s, rejected %s in Notion", behavior, result.approved,
                     result.rejected)  # fmt: skip
        for item, why in result.left:
            log.warning("%s: proposal %s left for the operator: %s", behavior, item, why)


def add_review_reads(
    scheduler: BaseScheduler, ledger: LedgerService, settings: Settings
) -> ReviewReader:
    """Schedule the reads of the Sunday decisions on `scheduler` (the ledger's own)."""
    tz = ZoneInfo(ledger.policy.timezone)
    client = sync_client(settings, Pacing(ledger.engine, rate=settings.notion_rate))
    reader = ReviewReader(ledger, client, NotionStore(ledger.engine))
    every = settings.notion_review_read_minutes
    scheduler.add_job(
        read_job, CronTrigger(day_of_week="sun", minute=f"*/{every}", timezone=tz),
        (reader, tz), id=REVIEW_READ_JOB, name="Notion review read", replace_existing=True,
    )  # fmt: skip
    scheduler.add_job(
        read_job, CronTrigger(day_of_week="sun", hour=23, minute=58, timezone=tz), (reader, tz),
        id=REVIEW_LAST_READ_JOB, name="Notion review read before the close",
        replace_existing=True,
    )  # fmt: skip
    pages = ProposalPages(ledger, client, NotionStore(ledger.engine))
    scheduler.add_job(
        proposals_job, IntervalTrigger(seconds=settings.notion_proposals_s), (pages,),
        id=PROPOSALS_JOB, name="Notion proposal pages", replace_existing=True,
    )  # fmt: skip
    return reader
