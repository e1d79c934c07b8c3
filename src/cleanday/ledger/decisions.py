"""The Sunday decision: Promote or Hold is accepted only during the Sunday of its review (a day
in the ledger's time zone) and only for a behavior in that review. Each decision names who made
it and through which door (the CLI, the API, the Pane, the review pages). Of two decisions for
the same behavior the later one (by when it was made at its door) stands; an earlier one that
arrives after it is still recorded, marked superseded, so both are in the ledger."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from cleanday import clock
from cleanday.chain import NewEntry
from cleanday.domain import DECISION_DOORS, BehaviorState, Decision, EntryKind
from cleanday.errors import DecisionError, DecisionRefused
from cleanday.ledger import reads, store
from cleanday.ledger.bounds import check_day
from cleanday.ledger.core import LedgerCore
from cleanday.ledger.folding import commit_facts
from cleanday.ledger.schemas import DecisionRow

# the rules a refused decision names
A_SUNDAY = "a review is named by its Sunday"
ON_ITS_SUNDAY = "a decision is accepted only during the Sunday of its review"
IN_THE_REVIEW = "a decision is accepted only for a behavior in that review"


def refusal(
    week: date, today: date, tz: str, state: BehaviorState, closed: bool
) -> tuple[str, str] | None:
    """The rule a decision for `state`'s behavior in the review of `week` breaks when made on
    local day `today`, and what makes it break it; None when it may be recorded."""
    if not clock.is_sunday(week):
        return A_SUNDAY, f"{week} is not a Sunday but a {week:%A}"
    if closed or today > week:
        return ON_ITS_SUNDAY, f"the review of {week} closed at the end of that Sunday"
    if today < week:
        return ON_ITS_SUNDAY, (
            f"it is {today:%A} {today} in {tz}; the review of {week} takes decisions on "
            "that Sunday only"
        )
    if not state.candidate:
        return IN_THE_REVIEW, (
            f"{state.behavior} is not a candidate in the review of {week} (tier "
            f"{state.tier.value}, {state.clean_days} clean days, {state.status.value})"
        )
    return None


def decide(
    ledger: LedgerCore,
    name: str,
    week: date,
    decision: Decision,
    by: str = "operator",
    door: str = "api",
    decided_at: datetime | None = None,
) -> DecisionRow:
    """Record Promote/Hold for `name` in the review of `week`, made by `by` through `door` at
    `decided_at` (default now; a review page gives its own edit time). Raises `DecisionRefused`
    naming the rule broken and the next review."""
    check_day(week, "week")
    if door not in DECISION_DOORS:
        raise DecisionError(f"unknown door {door!r}; use one of {', '.join(DECISION_DOORS)}")
    decision = Decision(decision)
    now = ledger.now()
    decided_at = decided_at or now
    tz = ledger.policy.timezone
    with ledger.unit_of_work(now) as uow:
        state = ledger.view(uow.conn, name, now)
        closed = store.job_result(uow.conn, f"sunday_close:{week}") is not None
        broken = refusal(week, clock.local_date(now, tz), tz, state, closed)
        if broken is not None:
            rule, detail = broken
            next_review = clock.next_review_at(now, tz, ledger.review_hour)
            raise DecisionRefused(name, rule, detail, next_review)
        data = {
            "week": week.isoformat(),
            "decision": decision.value,
            "by": by,
            "door": door,
            "decided_at": decided_at.isoformat(),
        }
        standing = next(
            (d for d in reads.decision_log(ledger, uow.conn, week, name) if d.stands), None
        )
        if standing is not None and standing.decided_at > decided_at:
            data["superseded_by"] = (
                f"{standing.decision.value} by {standing.by} ({standing.door or 'unknown door'}) "
                f"decided {standing.decided_at.isoformat()}"
            )
        key = f"decision:{week}:{uuid.uuid4().hex}"
        fact = NewEntry(name, EntryKind.DECISION.value, now, key, data)
        commit_facts(ledger, uow, name, [fact])
        return reads.decision_row(name, week, now, data).model_copy(
            update={"stands": "superseded_by" not in data}
        )
