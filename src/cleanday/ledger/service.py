"""`LedgerService`: the ledger's use cases behind one object, for the HTTP API, the CLI and the
scheduler. Each method is one unit of work (or one read) in the module of its concern."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanday.config import Settings, get_settings
from cleanday.db import make_engine, migrate
from cleanday.domain import BehaviorState, Decision, EntryKind, Policy, Tier
from cleanday.ledger import reads
from cleanday.ledger.core import DEFAULT_DOOR, LedgerCore
from cleanday.ledger.schemas import (
    BatchResult,
    BehaviorRow,
    DayCloseResult,
    DecisionRow,
    LedgerEntryRow,
    Medians,
    PendingItemRow,
    Permit,
    RebuildResult,
    RegistrationResult,
    ReportResult,
    RunReport,
    SundayCloseResult,
)
from cleanday.workorder import WorkOrder

if TYPE_CHECKING:
    from cleanday.chain import VerifyResult
    from cleanday.ledger import (
        acts,
        days,
        decisions,
        integrity,
        items,
        permits,
        registration,
        retirement,
        reviews,
        runs,
    )
else:  # each use case imported when first called: a read verb needs only `reads`
    from cleanday.lazy import lazy_module

    acts, days, decisions, integrity, items, permits, registration, retirement, reviews, runs = (
        lazy_module(f"cleanday.ledger.{m}")
        for m in (
            "acts", "days", "decisions", "integrity", "items", "permits", "registration",
            "retirement",
            "reviews", "runs",
        )
    )  # fmt: skip


class LedgerService(LedgerCore):
    """The ledger over one engine; every method is one transaction (or one read), `now` from
    the injected clock, refusals as `cleanday.errors` types."""

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> LedgerService:
        """The ledger of these settings: engine on the configured database, migrated to head,
        policy in the configured time zone."""
        settings = settings or get_settings()
        engine = make_engine(url, settings=settings)
        migrate(engine)
        return cls(
            engine, Policy(timezone=settings.timezone), clock, review_hour=settings.review_hour
        )

    # -- registration -------------------------------------------------------------------

    def register(self, work_order_path: Path | str, *, revive: bool = False) -> RegistrationResult:
        return registration.register(self, work_order_path, revive=revive)

    def register_work_order(
        self, wo: WorkOrder, source: str, text: str | None = None, *, revive: bool = False
    ) -> RegistrationResult:
        return registration.register_work_order(self, wo, source, text, revive=revive)

    # -- runs, items, permits -------------------------------------------------------------

    def report_run(self, report: RunReport) -> ReportResult:
        """Record a finished run (idempotent by run_id): a batch of one."""
        return runs.report_runs(self, [report])[0]

    def report_runs(self, reports: Sequence[RunReport]) -> list[ReportResult]:
        return runs.report_runs(self, reports)

    def request_permit(self, name: str, run_id: str, *, item_id: str | None = None) -> Permit:
        return permits.request_permit(self, name, run_id, item_id=item_id)

    def approve(
        self,
        name: str,
        item_ids: Sequence[str] | None = None,
        by: str = "operator",
        door: str = DEFAULT_DOOR,
    ) -> BatchResult:
        return items.approve(self, name, item_ids, by, door)

    def reject(
        self,
        name: str,
        item_ids: Sequence[str] | None = None,
        reason: str = "",
        by: str = "operator",
        door: str = DEFAULT_DOOR,
    ) -> BatchResult:
        return items.reject(self, name, item_ids, reason, by, door)

    def release(
        self, name: str, item_id: str, by: str = "operator", door: str = DEFAULT_DOOR
    ) -> BatchResult:
        return items.release(self, name, item_id, by, door)

    # -- the operator's acts --------------------------------------------------------------

    def override(
        self,
        name: str,
        reason: str,
        kind: str = "manual",
        tier: Tier | None = None,
        run_id: str | None = None,
    ) -> BehaviorRow:
        return acts.override(self, name, reason, kind, tier, run_id)

    def pause(self, name: str, by: str = "operator", reason: str = "") -> BehaviorRow:
        return acts.change_status(self, name, EntryKind.PAUSED, by, reason)

    def resume(self, name: str, by: str = "operator", reason: str = "") -> BehaviorRow:
        return acts.change_status(self, name, EntryKind.RESUMED, by, reason)

    def retire(self, name: str, by: str = "operator", reason: str = "") -> BehaviorRow:
        """Retire for good (no reports, no permits) and release its model key."""
        return retirement.retire(self, name, by, reason)

    def decide(
        self,
        name: str,
        week: date,
        decision: Decision,
        by: str = "operator",
        door: str = "api",
        decided_at: datetime | None = None,
    ) -> DecisionRow:
        return decisions.decide(self, name, week, decision, by, door, decided_at)

    def restore_preset(self, name: str, version: int, by: str = "operator") -> int:
        return acts.restore_preset(self, name, version, by)

    # -- reviews and days -----------------------------------------------------------------

    def candidates(self, week: date | None = None) -> list[BehaviorRow]:
        return reads.candidates(self, week)

    def decisions(self, week: date) -> list[DecisionRow]:
        """Every decision recorded for the review of `week`, superseded ones included."""
        with self.engine.connect() as conn:
            return reads.decision_log(self, conn, week)

    def post_review(self, sunday: date) -> list[BehaviorRow]:
        return reviews.post_review(self, sunday)

    def close_sunday(self, sunday: date) -> SundayCloseResult:
        return reviews.close_sunday(self, sunday)

    def close_day(self, d: date) -> DayCloseResult:
        return days.close_day(self, d)

    def missed_closes(self, today: date) -> days.MissedCloses:
        return days.missed_closes(self, today)

    # -- integrity and replay -------------------------------------------------------------

    def verify(self) -> VerifyResult:
        return integrity.verify(self)

    def rebuild(self) -> RebuildResult:
        return integrity.rebuild(self)

    def replay(self, policy: Policy) -> list[BehaviorRow]:
        return integrity.replay(self, policy)

    # -- reads ----------------------------------------------------------------------------

    def list_behaviors(self, *, include_retired: bool = False) -> list[BehaviorRow]:
        return reads.list_behaviors(self, include_retired=include_retired)

    def get_work_order(self, name: str) -> WorkOrder:
        return reads.get_work_order(self, name)

    def current_work_order(self, name: str) -> tuple[int, dict[str, Any]]:
        return reads.current_work_order(self, name)

    def state(self, name: str) -> BehaviorState:
        return reads.state(self, name)

    def history(self, name: str) -> list[LedgerEntryRow]:
        return reads.history(self, name)

    def items(
        self, name: str, *, status: str | None = None, item_id: str | None = None
    ) -> list[PendingItemRow]:
        return reads.items(self, name, status=status, item_id=item_id)

    def item(self, name: str, item_id: str) -> PendingItemRow:
        return reads.item(self, name, item_id)

    def trailing_medians(self, name: str, days: int = 14) -> Medians:
        return reads.trailing_medians(self, name, days)
