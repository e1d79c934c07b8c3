"""The Sunday review: posting the week's candidates in the morning, and closing it at the end of
Sunday, when each candidate marked Promote that is still a candidate moves up one tier (the
ladder decides which). Both idempotent by week."""

from __future__ import annotations

from datetime import date

from cleanday import clock
from cleanday.domain import EntryKind
from cleanday.errors import DecisionError
from cleanday.ledger import reads, store
from cleanday.ledger.bounds import check_day
from cleanday.ledger.core import LedgerCore
from cleanday.ledger.folding import fold, store_folds
from cleanday.ledger.schemas import BehaviorRow, SundayCloseResult
from cleanday.notices import Candidate, ReviewClosed, ReviewOpened


def post_review(ledger: LedgerCore, sunday: date) -> list[BehaviorRow]:
    """Sunday morning: open the review of this week's candidates (ReviewOpened; its reactions
    post the review rows and the summary). Idempotent by week."""
    check_day(sunday, "week")
    job = f"review_post:{sunday}"
    rows = reads.candidates(ledger, sunday)
    with ledger.unit_of_work() as uow:
        if store.job_result(uow.conn, job) is not None:
            return rows
        candidates = tuple(Candidate(r.name, r.tier, r.clean_days) for r in rows)
        uow.notify(ReviewOpened(None, uow.now, sunday, candidates))
        n = uow.publish()
        result = {"candidates": len(rows), "outbox": n}
        store.record_job(uow.conn, job, uow.now, ledger.now(), result)
    return rows


def close_sunday(ledger: LedgerCore, sunday: date) -> SundayCloseResult:
    """Close the review of `sunday`: each candidate marked Promote that is still a candidate
    moves up one tier (the ladder decides); write `promoted` entries and raise their notices.
    Idempotent by week."""
    check_day(sunday, "week")
    now = ledger.now()
    if sunday.weekday() != 6:
        raise DecisionError(f"{sunday} is not a Sunday; a review is named by its Sunday")
    job = f"sunday_close:{sunday}"
    if now < clock.sunday_close_at(sunday, ledger.policy.timezone):
        raise DecisionError(f"the review of {sunday} closes at the end of that Sunday")
    with ledger.unit_of_work(now) as uow:
        conn = uow.conn
        done = store.job_result(conn, job)
        if done is not None:
            return SundayCloseResult.model_validate({**done, "already_closed": True})
        policy = ledger.policy_of(conn)
        decisions = reads.decisions(ledger, conn, sunday)
        rows = store.state_rows(conn, sorted(decisions))
        folds = [
            fold(conn, row, store.primitive_entries_of(conn, n, row.last_seq), policy, now)
            for n, row in rows.items()
        ]
        promoted = sorted(
            {
                f.name
                for f in folds
                for x in f.derived
                if x.kind == EntryKind.PROMOTED and x.data.get("week") == sunday.isoformat()
            }
        )
        held = sorted(set(decisions) - set(promoted))
        store_folds(uow, rows, folds)
        uow.notify(ReviewClosed(None, now, sunday, tuple(promoted), tuple(held)))
        n_out = uow.publish()
        result = SundayCloseResult(
            week=sunday, already_closed=False, promoted=promoted, held=held, outbox=n_out
        )
        store.record_job(conn, job, now, ledger.now(), result.model_dump(mode="json"))
    return result
