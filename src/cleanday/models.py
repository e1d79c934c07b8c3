"""The ledger's tables, as SQLAlchemy Core tables on their own `metadata` (no ORM classes: the
read verbs import this without SQLModel or `sqlalchemy.orm`). Schema changes go through
migrations, never `create_all`; `cleanday.router.tables` puts these tables into SQLModel's
metadata beside the routing tables, for the migrations' autogenerate check."""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


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


metadata = sa.MetaData()

# A registered behavior and its current Work Order version.
T_BEHAVIORS = sa.Table(
    "behaviors",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("version", sa.Integer(), nullable=False, default=1),
    # the validated Work Order, canonical JSON
    sa.Column("work_order", sa.JSON(), nullable=False),
    sa.Column("work_order_text", sa.Text(), nullable=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("preset_hash", sa.String(64), nullable=False),
    sa.Column("preset_version", sa.Integer(), nullable=False, default=1),
    # one behavior, one key: the reference (never the secret) is unique across behaviors
    sa.Column("key_ref", sa.String(512), nullable=False, unique=True),
    sa.Column("idle_days", sa.String(16), nullable=False, default="skip"),
    sa.Column("source_path", sa.String(1024), nullable=False),
    sa.Column("registered_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("status_changed_at", UTCDateTime(), nullable=True),
)

# Every Work Order version ever registered, so any version can be read back.
T_VERSIONS = sa.Table(
    "behavior_versions",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("behavior", sa.String(64), sa.ForeignKey("behaviors.name"), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("preset_version", sa.Integer(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("work_order", sa.JSON(), nullable=False),
    sa.Column("work_order_text", sa.Text(), nullable=True),
    sa.Column("registered_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("behavior", "version"),
)

# One append-only, hash-chained ledger entry; `seq` is the global chain order.
T_ENTRIES = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False, nullable=False),
    sa.Column("behavior", sa.String(64), sa.ForeignKey("behaviors.name"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("key", sa.String(256), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("behavior", "key", name="uq_ledger_entries_behavior_key"),
    sa.Index("ix_ledger_entries_behavior_kind_seq", "behavior", "kind", "seq"),
    sa.Index("ix_ledger_entries_behavior_seq", "behavior", "seq"),
    sa.Index("ix_ledger_entries_kind_at", "kind", "at"),
)

# The last entry of the chain (one row, id 1): lets `verify` see a deleted tail entry, and is the
# row PostgreSQL locks to serialize appends.
T_CHAIN_HEAD = sa.Table(
    "chain_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False, default=1),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # every primitive entry up to this seq is folded into its behavior's materialized state;
    # the day close folds what lies beyond (entries bulk-loaded without folding)
    sa.Column("folded_seq", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The materialized state of one behavior, so listing and candidates never fold history.
T_STATES = sa.Table(
    "behavior_states",
    metadata,
    sa.Column(
        "behavior", sa.String(64), sa.ForeignKey("behaviors.name"), primary_key=True, nullable=False
    ),
    sa.Column("tier", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("clean_days", sa.Integer(), nullable=False, default=0),
    sa.Column("candidate", sa.Boolean(), nullable=False, index=True, default=False),
    sa.Column("last_gate_failure", sa.Date(), nullable=True),
    sa.Column("last_failure_gate", sa.String(64), nullable=True),
    sa.Column("last_failure_reason", sa.Text(), nullable=True),
    sa.Column("last_failure_run", sa.String(256), nullable=True),
    sa.Column("tier_since", UTCDateTime(), nullable=True),
    sa.Column("quarantined_at", UTCDateTime(), nullable=True),
    sa.Column("accumulator", sa.JSON(), nullable=False),
    # the highest primitive entry seq folded into `accumulator`
    sa.Column("last_seq", sa.BigInteger(), nullable=False),
    # the newest tier change that already has its derived audit entry (promoted/demoted)
    sa.Column("last_change_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# One reported run: idempotency by run_id, and the trailing medians for anomalies.
T_RUNS = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("run_id", sa.String(256), nullable=False, unique=True),
    sa.Column("workflow_id", sa.String(256), nullable=True),
    sa.Column("behavior", sa.String(64), sa.ForeignKey("behaviors.name"), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("cost_usd", sa.Float(), nullable=False, default=0.0),
    sa.Column("tokens_in", sa.Integer(), nullable=True),
    sa.Column("tokens_out", sa.Integer(), nullable=True),
    sa.Column("model", sa.String(256), nullable=True),
    sa.Column("transport", sa.String(32), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=True),
    sa.Column("output_size", sa.Integer(), nullable=True),
    sa.Column("summary", sa.Text(), nullable=True),
    sa.Column("reported_at", UTCDateTime(), nullable=False),
    sa.Index("ix_runs_behavior_finished", "behavior", "finished_at"),
)

# A tier-A proposal or a tier-B staged item, waiting for the operator.
T_PENDING = sa.Table(
    "pending_items",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("item_id", sa.String(256), nullable=False),
    sa.Column("behavior", sa.String(64), sa.ForeignKey("behaviors.name"), nullable=False),
    sa.Column("run_id", sa.String(256), nullable=False),
    # proposal | staged
    sa.Column("kind", sa.String(16), nullable=False),
    # pending | approved | rejected | released | expired | acted
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("decided_at", UTCDateTime(), nullable=True),
    sa.Column("decided_by", sa.String(128), nullable=True),
    sa.UniqueConstraint("behavior", "item_id", name="uq_pending_items_behavior_item"),
    sa.Index("ix_pending_items_behavior_status", "behavior", "status"),
    sa.Index("ix_pending_items_status_id", "status", "id"),
)

# A notification for Slack or Notion, delivered in order when the service answers.
T_OUTBOX = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    # slack | notion
    sa.Column("channel", sa.String(16), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("dedupe_key", sa.String(256), nullable=False, unique=True),
    sa.Column("behavior", sa.String(64), nullable=True),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime(), nullable=True, index=True),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("last_error", sa.Text(), nullable=True),
    # a Slack channel, a Notion data source: rows of one target are delivered in ID order;
    # NULL until the delivery routes the row (cleanday.outbox)
    sa.Column("target", sa.String(256), nullable=True),
    # a failed head row's back-off
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    # e.g. Slack's channel and ts
    sa.Column("receipt", sa.JSON(), nullable=True),
    # `cleanday outbox drop`
    sa.Column("dropped_at", UTCDateTime(), nullable=True),
    sa.Column("dropped_by", sa.String(128), nullable=True),
    sa.Column("drop_reason", sa.Text(), nullable=True),
    sa.Index("ix_outbox_waiting", "channel", "target", "delivered_at", "id"),
)

# Who drains the outbox: one holder at a time across service instances, until its lease expires (a
# holder that died is taken over).
T_OUTBOX_LEASES = sa.Table(
    "outbox_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True, nullable=False),
    sa.Column("holder", sa.String(128), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=True),
)

# A clock job that ran (`day_close:2026-11-20`), so running it twice changes nothing.
T_JOBS = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("job_key", sa.String(128), nullable=False, unique=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Column("result", sa.JSON(), nullable=False),
)

# An accepted webhook delivery: stored before it is answered, started as a run when Temporal
# answers (`cleanday.webhook_inbox`). Its signature is the replay store every instance shares.
T_WEBHOOK_DELIVERIES = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("signature", sa.String(64), nullable=False, unique=True),
    sa.Column("behavior", sa.String(64), nullable=False),
    sa.Column("workflow_id", sa.String(256), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("signed_at", UTCDateTime(), nullable=False),
    # past this the signature can no longer verify (stale), so a started row may be forgotten
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Index("ix_webhook_deliveries_started_id", "started_at", "id"),
)

# A Pane of Glass session signed out before it expired: refused by every service instance (the
# session itself is a signed cookie; this is all the server keeps of it).
T_PANE_SIGNOUTS = sa.Table(
    "pane_signouts",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True, nullable=False),
    # the session's own expiry; pruned after it
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("signed_out_at", UTCDateTime(), nullable=False),
)

# A Notion data source cleanday writes to (`cleanday notion init`), by its role.
T_NOTION_DATA_SOURCES = sa.Table(
    "notion_data_sources",
    metadata,
    # ledger | gate_failures | reviews
    sa.Column("role", sa.String(32), primary_key=True, nullable=False),
    sa.Column("title", sa.String(128), nullable=False),
    sa.Column("parent_page_id", sa.String(64), nullable=False),
    sa.Column("database_id", sa.String(64), nullable=False),
    sa.Column("data_source_id", sa.String(64), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

# A Notion row cleanday wrote, by its key; no `page_id` while its create is uncertain.
T_NOTION_PAGES = sa.Table(
    "notion_pages",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("behavior", sa.String(64), nullable=True),
    sa.Column("page_id", sa.String(64), nullable=True),
    sa.Column("url", sa.String(512), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_notion_pages_role_behavior", "role", "behavior"),
)

# The next free request slot of a Notion integration, shared by every instance.
T_NOTION_PACING = sa.Table(
    "notion_pacing",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True, nullable=False),
    sa.Column("next_at", sa.Float(precision=53), nullable=False),
)

# The verification token of the Notion webhook subscription (`POST /notion/webhook`): the key
# that signs its events; one row, the first token Notion sent, until the operator forgets it.
T_NOTION_WEBHOOK = sa.Table(
    "notion_webhook",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True, nullable=False),
    sa.Column("verification_token", sa.String(256), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
)
