"""Run reports: each finished run recorded once by run ID and folded into the ladder, in
batches under one chain lock (the group commit and `POST /api/v1/runs/batch` hand whole groups;
a single report is a batch of one).

A batch folds its reports one by one in memory, exactly as reporting them one at a time in
that order would, and writes each table with one executemany: the cost of a report is its
fold and its share of a few statements, never a query of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cleanday import ladder
from cleanday.bulk import raw_insert
from cleanday.chain import NewEntry
from cleanday.domain import BehaviorState, Entry, EntryKind, Status, Tier
from cleanday.errors import BehaviorRetired, RegistrationError, RunConflict, UnknownBehaviorError
from cleanday.ledger import items, store
from cleanday.ledger.core import LedgerCore, state_row
from cleanday.ledger.folding import Fold, fold, link_runs, state_changed
from cleanday.ledger.rows import row_of, row_of_state, state_values
from cleanday.ledger.schemas import BehaviorRow, ReportResult, RunReport
from cleanday.ledger.unit_of_work import UnitOfWork
from cleanday.models import T_ENTRIES, T_RUNS
from cleanday.notices import FailedGate, GateFailed, InfraErrored, RunReported

_Q_RUNS_SEEN = sa.select(T_RUNS.c.run_id, T_RUNS.c.behavior).where(
    T_RUNS.c.run_id.in_(sa.bindparam("run_ids", expanding=True))
)
_Q_RUN_ENTRY = sa.select(T_ENTRIES.c.data, T_ENTRIES.c.at).where(
    T_ENTRIES.c.behavior == sa.bindparam("behavior"), T_ENTRIES.c.key == sa.bindparam("key")
)
_TIERS = {t.value: t for t in Tier}
_RETIRED = Status.RETIRED.value


def report_runs(ledger: LedgerCore, reports: Sequence[RunReport]) -> list[ReportResult]:
    """Record finished runs in one transaction, one result per report (a run_id already
    recorded, in the ledger or earlier in the batch, is `recorded=False`, nothing changed).
    Any error writes nothing; in a batch of several it names the report's index."""
    if not reports:
        return []
    with ledger.unit_of_work() as uow:
        batch = _Batch(ledger, uow)
        batch.prefetch(reports)
        results = []
        for i, report in enumerate(reports):
            try:
                results.append(batch.add(report))
            except (BehaviorRetired, RegistrationError, RunConflict, UnknownBehaviorError) as exc:
                if len(reports) == 1:
                    raise
                which = f"report {i} ({report.run_id}): {exc}"
                if isinstance(exc, RunConflict):
                    raise RunConflict(which, exc.fields) from exc
                raise type(exc)(which) from exc
        batch.finish()
    return results


@dataclass
class _Mem:
    """A behavior's state row as the batch holds it between its reports (the attributes
    `fold` reads), with its accumulator kept decoded."""

    behavior: str
    acc: ladder.Accumulator
    last_seq: int
    last_change_at: datetime | None
    status: str
    tier: str
    idle_days: str
    version: int
    preset_version: int
    row: Any  # the state row read: what the operator saw before this batch
    view: BehaviorRow | None = None  # the row after this batch's last fold
    state: BehaviorState | None = None  # what the batch's last fold concluded, stored at the end

    def current_view(self) -> BehaviorRow:
        if self.view is not None:
            return self.view
        return row_of(self.row)


class _Batch:
    """One `report_runs` transaction."""

    def __init__(self, ledger: LedgerCore, uow: UnitOfWork) -> None:
        self.ledger, self.uow, self.conn, self.now = ledger, uow, uow.conn, uow.now
        self.mem: dict[str, _Mem] = {}
        self.seen: dict[str, str] = {}  # run_id -> behavior: every recorded run of the batch
        self.sent: dict[str, RunReport] = {}  # run_id -> report: the runs recorded by this batch
        self.workflows: dict[str, str | None] = {}  # run_id -> workflow_id, runs of this batch
        self.runs: list[dict[str, Any]] = []  # not yet inserted
        self.with_items: list[RunReport] = []

    def prefetch(self, reports: Sequence[RunReport]) -> None:
        """Read the batch's state rows and already recorded run IDs with a few queries."""
        rows = store.state_rows(self.conn, sorted({r.behavior for r in reports}), acc_text=True)
        for row in rows.values():
            self._state(row.behavior, row)
        run_ids = sorted({r.run_id for r in reports})
        for part in store.chunks(run_ids, 1000):
            found = self.conn.execute(_Q_RUNS_SEEN, {"run_ids": part}).all()
            self.seen.update({str(f.run_id): str(f.behavior) for f in found})

    def _state(self, name: str, row: Any = None) -> _Mem:
        m = self.mem.get(name)
        if m is None:
            if row is None:
                row = state_row(self.conn, name)  # not prefetched: unknown, says so
            if hasattr(row, "accumulator_text"):
                acc = self.ledger.accumulators.decode(name, row.accumulator_text)
            else:
                acc = ladder.Accumulator.from_json(row.accumulator)
            m = _Mem(
                name,
                acc,
                int(row.last_seq),
                row.last_change_at,
                row.status,
                row.tier,
                row.idle_days,
                row.version,
                row.preset_version,
                row,
            )
            self.mem[name] = m
        return m

    def flush(self) -> None:
        """Insert what is held so far (a refold reads a behavior's entries back)."""
        if self.runs:
            raw_insert(self.conn, T_RUNS, self.runs)
            self.runs = []
        self.uow.flush()

    def add(self, report: RunReport) -> ReportResult:
        name, now = report.behavior, self.now
        m = self._state(name)
        prior = self.seen.get(report.run_id)
        if prior is not None:
            if prior != name:
                raise RegistrationError(
                    f"run {report.run_id} was already reported for behavior "
                    f"{prior}, not {name}; run IDs are unique"
                )
            self._refuse_other_content(report)
            return ReportResult(
                behavior=name,
                run_id=report.run_id,
                recorded=False,
                message=f"run {report.run_id} already recorded; nothing changed",
                state=m.current_view(),
            )
        if m.status == _RETIRED:
            raise BehaviorRetired(
                f"{name} is retired: it accepts no more run reports (run {report.run_id} was "
                "not recorded); `cleanday register --revive PATH` brings it back at tier A"
            )
        self.seen[report.run_id] = name
        self.sent[report.run_id] = report
        self.workflows[report.run_id] = report.workflow_id
        self.runs.append(run_row(report, now))
        if report.outcome in ("proposed", "staged"):
            self.with_items.append(report)
        data = report.model_dump(mode="json", exclude={"behavior", "finished_at", "items"})
        fact = NewEntry(
            name, EntryKind.RUN_REPORTED.value, report.finished_at, f"run:{report.run_id}", data
        )
        tier = _TIERS[m.tier]
        (fact_row,) = self.uow.append([fact])
        # the entry as it reads back from the database: UTC, JSON data
        at = fact.at.astimezone(UTC)
        pending = [(fact_row["seq"], Entry(name, EntryKind.RUN_REPORTED, at, fact.key, data))]
        policy = self.ledger.policy_for(m)
        out = fold(self.conn, m, pending, policy, now, acc=m.acc, flush=self.flush)
        out.derived[:0] = _run_audit(report, tier)
        self.uow.append(out.derived)
        run_id, workflow_id, finished = report.run_id, report.workflow_id, report.finished_at
        self.uow.notify(RunReported(name, finished, run_id, workflow_id, report.outcome, tier))
        failed = tuple(FailedGate(g.name, g.reason) for g in report.gates if not g.passed)
        if report.outcome == "infra_error":
            kind, reason = report.infra or "unknown", report.summary or ""
            self.uow.notify(InfraErrored(name, finished, run_id, workflow_id, kind, reason))
        elif failed:
            demotion = out.demoted_by(run_id)
            to = demotion.to_tier if demotion is not None else None
            self.uow.notify(GateFailed(name, finished, run_id, workflow_id, tier, failed, to))
        if out.notices:
            self.uow.notify(*link_runs(self.conn, out.notices, self.workflows))
        view = row_of_state(
            out.state, version=m.version, preset_version=m.preset_version, updated_at=now
        )
        m.acc, m.last_seq, m.last_change_at = out.acc, out.last_seq, out.last_change_at
        m.status, m.tier, m.view, m.state = (
            out.state.status.value,
            out.state.tier.value,
            view,
            out.state,
        )
        return ReportResult(
            behavior=name,
            run_id=report.run_id,
            recorded=True,
            message=_report_message(report, view, out),
            state=view,
            derived=[d.kind for d in out.derived],
        )

    def _refuse_other_content(self, report: RunReport) -> None:
        """A repeat must say what the recorded run says: a run ID names one run, so a report
        that differs is refused (409) naming the fields, rather than dropped in silence."""
        earlier = self.sent.get(report.run_id)
        if earlier is not None:
            recorded, at = _content(earlier), earlier.finished_at
        else:
            row = self.conn.execute(
                _Q_RUN_ENTRY, {"behavior": report.behavior, "key": f"run:{report.run_id}"}
            ).first()
            if row is None:
                return  # recorded before run entries kept their content; nothing to compare
            recorded, at = dict(row.data or {}), row.at
        differ = diff_content(recorded, at, report)
        if differ:
            raise RunConflict(
                f"run {report.run_id} is already recorded with other content: "
                f"{', '.join(differ)} differ; a run ID names one run, so report another run "
                "under a new run_id (a retry must send the same report)",
                differ,
            )

    def finish(self) -> None:
        conn, now = self.conn, self.now
        self.flush()
        for report in self.with_items:
            items.add_items(conn, report, now)
        encode = self.ledger.accumulators.encode
        updates = []
        for m in self.mem.values():
            if m.state is None:
                continue  # only repeats of recorded runs: nothing changed
            values = state_values(m.state)
            changed = state_changed(
                m.state, m.row, values, now, version=m.version, preset_version=m.preset_version
            )
            updates.append(
                {
                    "behavior": m.behavior,
                    **values,
                    "accumulator": encode(m.behavior, m.acc),
                    "last_seq": m.last_seq,
                    "last_change_at": m.last_change_at,
                    "updated_at": now,
                }
            )
            if changed is not None:
                self.uow.notify(changed)
        store.update_states(conn, updates)


def _content(report: RunReport) -> dict[str, Any]:
    """What a run's `run_reported` entry keeps of its report (its `at` is `finished_at`)."""
    return report.model_dump(mode="json", exclude={"behavior", "finished_at", "items"})


def diff_content(recorded: dict[str, Any], at: datetime, report: RunReport) -> list[str]:
    """The fields in which `report` differs from a recorded run's entry data and time; times
    compared as instants, whatever offset they were written with."""
    sent = _content(report)
    differ = ["finished_at"] if at.astimezone(UTC) != report.finished_at.astimezone(UTC) else []
    for field_name in sorted(sent.keys() | recorded.keys()):
        a, b = recorded.get(field_name), sent.get(field_name)
        if field_name == "started_at" and a is not None:
            if datetime.fromisoformat(a) == report.started_at:
                continue
        elif a == b:
            continue
        differ.append(field_name)
    return sorted(differ)


def _run_audit(report: RunReport, tier: Tier) -> list[NewEntry]:
    """The gate_failed and anomaly audit entries of one run."""
    derived: list[NewEntry] = []
    at = report.finished_at
    if report.outcome == "infra_error":  # the audit shows it; the ladder does not count it
        data = {"run_id": report.run_id, "infra": report.infra, "reason": report.summary}
        key = f"infra_error:{report.run_id}"
        return [NewEntry(report.behavior, EntryKind.INFRA_ERROR.value, at, key, data)]
    for g in report.gates:
        if not g.passed:
            data = {"run_id": report.run_id, "gate": g.name, "reason": g.reason, "tier": tier.value}
            key = f"gate_failed:{report.run_id}:{g.name}"
            derived.append(NewEntry(report.behavior, EntryKind.GATE_FAILED.value, at, key, data))
    for a in report.anomalies:
        data = {"run_id": report.run_id, "name": a.name, "detail": a.detail}
        key = f"anomaly:{report.run_id}:{a.name}"
        derived.append(NewEntry(report.behavior, EntryKind.ANOMALY.value, at, key, data))
    return derived


def _report_message(report: RunReport, row: BehaviorRow, out: Fold) -> str:
    kinds = [d.kind for d in out.derived]
    parts = [f"run {report.run_id} recorded"]
    if EntryKind.DEMOTED.value in kinds:
        parts.append(f"{report.behavior} demoted to tier {row.tier.value}")
    if EntryKind.QUARANTINED.value in kinds:
        parts.append(f"{report.behavior} quarantined")
    return "; ".join(parts)


def run_row(report: RunReport, now: datetime) -> dict[str, Any]:
    """The `runs` table row of a report (the one place its columns are listed)."""
    return dict(
        run_id=report.run_id,
        workflow_id=report.workflow_id,
        behavior=report.behavior,
        started_at=report.started_at,
        finished_at=report.finished_at,
        outcome=report.outcome,
        cost_usd=report.cost_usd,
        tokens_in=report.tokens_in,
        tokens_out=report.tokens_out,
        model=report.model,
        transport=report.transport,
        latency_ms=report.latency_ms,
        output_size=report.output_size,
        summary=report.summary,
        reported_at=now,
    )
