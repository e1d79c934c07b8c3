"""The ledger's tables (SQLModel). Schema changes go through migrations, never `create_all`."""

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (no zone support) and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("ledger timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(sa.JSON(), nullable=nullable))


class Behavior(SQLModel, table=True):
    """A registered behavior and its current Work Order version."""

    __tablename__ = "behaviors"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    version: int = 1
    work_order: dict[str, Any] = _json()  # the validated Work Order, canonical JSON
    work_order_text: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    content_hash: str = Field(max_length=64)
    preset_hash: str = Field(max_length=64)
    preset_version: int = 1
    # one behavior, one key: the reference (never the secret) is unique across behaviors
    key_ref: str = Field(max_length=512, unique=True)
    idle_days: str = Field(default="skip", max_length=16)
    source_path: str = Field(max_length=1024)
    registered_at: datetime = _ts()
    updated_at: datetime = _ts()
    status_changed_at: datetime | None = _ts(nullable=True)


class BehaviorVersion(SQLModel, table=True):
    """Every Work Order version ever registered, so any version can be read back."""

    __tablename__ = "behavior_versions"
    __table_args__ = (sa.UniqueConstraint("behavior", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    behavior: str = Field(max_length=64, foreign_key="behaviors.name")
    version: int
    preset_version: int
    content_hash: str = Field(max_length=64)
    work_order: dict[str, Any] = _json()
    work_order_text: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    registered_at: datetime = _ts()


class LedgerEntry(SQLModel, table=True):
    """One append-only, hash-chained ledger entry; `seq` is the global chain order."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.UniqueConstraint("behavior", "key", name="uq_ledger_entries_behavior_key"),
        sa.Index("ix_ledger_entries_behavior_seq", "behavior", "seq"),
        # the week's decisions, without reading the week's run reports (0003_listing)
        sa.Index("ix_ledger_entries_kind_at", "kind", "at"),
    )

    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False))
    behavior: str = Field(max_length=64, foreign_key="behaviors.name")
    kind: str = Field(max_length=32)
    at: datetime = _ts(index=True)
    key: str = Field(max_length=256)
    data: dict[str, Any] = _json()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
    recorded_at: datetime = _ts()


class ChainHead(SQLModel, table=True):
    """The last entry of the chain (one row, id 1): lets `verify` see a deleted tail entry,
    and is the row PostgreSQL locks to serialize appends."""

    __tablename__ = "chain_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    hash: str = Field(max_length=64)
    # every primitive entry up to this seq is folded into its behavior's materialized state;
    # the day close folds what lies beyond (entries bulk-loaded without folding)
    folded_seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    updated_at: datetime = _ts()


class BehaviorStateRow(SQLModel, table=True):
    """The materialized state of one behavior, so listing and candidates never fold history."""

    __tablename__ = "behavior_states"

    behavior: str = Field(max_length=64, primary_key=True, foreign_key="behaviors.name")
    tier: str = Field(max_length=8)
    status: str = Field(max_length=16, index=True)
    clean_days: int = 0
    candidate: bool = Field(default=False, index=True)
    last_gate_failure: date | None = None
    last_failure_gate: str | None = Field(default=None, max_length=64)
    last_failure_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    last_failure_run: str | None = Field(default=None, max_length=256)
    tier_since: datetime | None = _ts(nullable=True)
    quarantined_at: datetime | None = _ts(nullable=True)
    accumulator: dict[str, Any] = _json()
    # the highest primitive entry seq folded into `accumulator`
    last_seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    # the newest tier change that already has its derived audit entry (promoted/demoted)
    last_change_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts()


class Run(SQLModel, table=True):
    """One reported run: idempotency by run_id, and the trailing medians for anomalies."""

    __tablename__ = "runs"
    __table_args__ = (sa.Index("ix_runs_behavior_finished", "behavior", "finished_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=256, unique=True)
    workflow_id: str | None = Field(default=None, max_length=256)
    behavior: str = Field(max_length=64, foreign_key="behaviors.name")
    started_at: datetime = _ts()
    finished_at: datetime = _ts()
    outcome: str = Field(max_length=16)
    cost_usd: float = 0.0
    tokens_in: int | None = None
    tokens_out: int | None = None
    model: str | None = Field(default=None, max_length=256)
    transport: str | None = Field(default=None, max_length=32)
    latency_ms: float | None = None
    output_size: int | None = None
    summary: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    reported_at: datetime = _ts()


class PendingItem(SQLModel, table=True):
    """A tier-A proposal or a tier-B staged item, waiting for the operator."""

    __tablename__ = "pending_items"
    __table_args__ = (
        sa.UniqueConstraint("behavior", "item_id", name="uq_pending_items_behavior_item"),
        sa.Index("ix_pending_items_behavior_status", "behavior", "status"),
        # what waits for the operator across every behavior, oldest first (0011_pane)
        sa.Index("ix_pending_items_status_id", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(max_length=256)
    behavior: str = Field(max_length=64, foreign_key="behaviors.name")
    run_id: str = Field(max_length=256)
    kind: str = Field(max_length=16)  # proposal | staged
    # pending | approved | rejected | released | expired | acted
    status: str = Field(default="pending", max_length=16)
    payload: dict[str, Any] = _json()
    created_at: datetime = _ts()
    expires_at: datetime | None = _ts(nullable=True)
    decided_at: datetime | None = _ts(nullable=True)
    decided_by: str | None = Field(default=None, max_length=128)


class OutboxItem(SQLModel, table=True):
    """A notification for Slack or Notion, delivered in order when the service answers."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16, index=True)  # slack | notion
    kind: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=256, unique=True)
    behavior: str | None = Field(default=None, max_length=64)
    payload: dict[str, Any] = _json()
    created_at: datetime = _ts()
    delivered_at: datetime | None = _ts(nullable=True, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))


class JobRun(SQLModel, table=True):
    """A clock job that ran (`day_close:2026-11-20`), so running it twice changes nothing."""

    __tablename__ = "job_runs"

    id: int | None = Field(default=None, primary_key=True)
    job_key: str = Field(max_length=128, unique=True)
    started_at: datetime = _ts()
    finished_at: datetime = _ts()
    result: dict[str, Any] = _json()


class WebhookDelivery(SQLModel, table=True):
    """An accepted webhook delivery: stored before it is answered, started as a run when Temporal
    answers (`cleanday.webhook_inbox`). Its signature is the replay store every instance shares."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # the deliveries still to start, oldest first
        sa.Index("ix_webhook_deliveries_started_id", "started_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    signature: str = Field(max_length=64, unique=True)
    behavior: str = Field(max_length=64)
    workflow_id: str = Field(max_length=256)
    payload: dict[str, Any] = _json()
    signed_at: datetime = _ts()
    # past this the signature can no longer verify (stale), so a started row may be forgotten
    expires_at: datetime = _ts(index=True)
    received_at: datetime = _ts()
    started_at: datetime | None = _ts(nullable=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))


class PaneSignout(SQLModel, table=True):
    """A Pane of Glass session signed out before it expired: refused by every service instance
    (the session itself is a signed cookie; this is all the server keeps of it)."""

    __tablename__ = "pane_signouts"

    session_id: str = Field(max_length=64, primary_key=True)
    expires_at: datetime = _ts(index=True)  # the session's own expiry; pruned after it
    signed_out_at: datetime = _ts()


# Core table handles, for the bulk and chain code that works below the ORM.
T_BEHAVIORS: sa.Table = SQLModel.metadata.tables["behaviors"]
T_VERSIONS: sa.Table = SQLModel.metadata.tables["behavior_versions"]
T_ENTRIES: sa.Table = SQLModel.metadata.tables["ledger_entries"]
T_CHAIN_HEAD: sa.Table = SQLModel.metadata.tables["chain_head"]
T_STATES: sa.Table = SQLModel.metadata.tables["behavior_states"]
T_RUNS: sa.Table = SQLModel.metadata.tables["runs"]
T_PENDING: sa.Table = SQLModel.metadata.tables["pending_items"]
T_OUTBOX: sa.Table = SQLModel.metadata.tables["outbox"]
T_JOBS: sa.Table = SQLModel.metadata.tables["job_runs"]
T_WEBHOOK_DELIVERIES: sa.Table = SQLModel.metadata.tables["webhook_deliveries"]
T_PANE_SIGNOUTS: sa.Table = SQLModel.metadata.tables["pane_signouts"]
