"""Ledger tables: behaviors, versions, hash-chained entries, chain head, states, runs,
pending items, outbox, job runs.

Revision ID: 0001_ledger
Revises:
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "behaviors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("work_order", sa.JSON(), nullable=False),
        sa.Column("work_order_text", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("preset_hash", sa.String(length=64), nullable=False),
        sa.Column("preset_version", sa.Integer(), nullable=False),
        sa.Column("key_ref", sa.String(length=512), nullable=False),
        sa.Column("idle_days", sa.String(length=16), nullable=False),
        sa.Column("source_path", sa.String(length=1024), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_ref"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("folded_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # the chain starts empty; its head row exists from the start so appends only ever lock it
    head = sa.table(
        "chain_head",
        sa.column("id", sa.Integer()),
        sa.column("seq", sa.BigInteger()),
        sa.column("hash", sa.String()),
        sa.column("folded_seq", sa.BigInteger()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "seq": 0,
                "hash": "0" * 64,
                "folded_seq": 0,
                "updated_at": datetime(1970, 1, 1, tzinfo=UTC),
            }
        ],
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_key", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=256), nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_outbox_channel", "outbox", ["channel"], unique=False)
    op.create_index("ix_outbox_delivered_at", "outbox", ["delivered_at"], unique=False)

    op.create_table(
        "behavior_states",
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("clean_days", sa.Integer(), nullable=False),
        sa.Column("candidate", sa.Boolean(), nullable=False),
        sa.Column("last_gate_failure", sa.Date(), nullable=True),
        sa.Column("last_failure_gate", sa.String(length=64), nullable=True),
        sa.Column("last_failure_reason", sa.Text(), nullable=True),
        sa.Column("last_failure_run", sa.String(length=256), nullable=True),
        sa.Column("tier_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accumulator", sa.JSON(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_change_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["behavior"],
            ["behaviors.name"],
        ),
        sa.PrimaryKeyConstraint("behavior"),
    )
    op.create_index("ix_behavior_states_candidate", "behavior_states", ["candidate"], unique=False)
    op.create_index("ix_behavior_states_status", "behavior_states", ["status"], unique=False)

    op.create_table(
        "behavior_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("preset_version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("work_order", sa.JSON(), nullable=False),
        sa.Column("work_order_text", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["behavior"],
            ["behaviors.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("behavior", "version"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["behavior"],
            ["behaviors.name"],
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("behavior", "key", name="uq_ledger_entries_behavior_key"),
        sa.UniqueConstraint("hash"),
    )
    op.create_index("ix_ledger_entries_at", "ledger_entries", ["at"], unique=False)
    op.create_index(
        "ix_ledger_entries_behavior_seq", "ledger_entries", ["behavior", "seq"], unique=False
    )

    op.create_table(
        "pending_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=256), nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["behavior"],
            ["behaviors.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("behavior", "item_id", name="uq_pending_items_behavior_item"),
    )
    op.create_index(
        "ix_pending_items_behavior_status", "pending_items", ["behavior", "status"], unique=False
    )

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=256), nullable=False),
        sa.Column("workflow_id", sa.String(length=256), nullable=True),
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=True),
        sa.Column("tokens_out", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("transport", sa.String(length=32), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("output_size", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["behavior"],
            ["behaviors.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id"),
    )
    op.create_index("ix_runs_behavior_finished", "runs", ["behavior", "finished_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_behavior_finished", table_name="runs")

    op.drop_table("runs")
    op.drop_index("ix_pending_items_behavior_status", table_name="pending_items")

    op.drop_table("pending_items")
    op.drop_index("ix_ledger_entries_behavior_seq", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_at", table_name="ledger_entries")

    op.drop_table("ledger_entries")
    op.drop_table("behavior_versions")
    op.drop_index("ix_behavior_states_status", table_name="behavior_states")
    op.drop_index("ix_behavior_states_candidate", table_name="behavior_states")

    op.drop_table("behavior_states")
    op.drop_index("ix_outbox_delivered_at", table_name="outbox")
    op.drop_index("ix_outbox_channel", table_name="outbox")

    op.drop_table("outbox")
    op.drop_table("job_runs")
    op.drop_table("chain_head")
    op.drop_table("behaviors")
