"""The outbox's delivery machinery: a target per row (a Slack channel, a Notion data source)
drained in ID order, a per-target back-off (the head row's next attempt), the receipt of what
was delivered (Slack's channel and ts), rows dropped by the operator, and the lease that keeps
one drainer active across service instances.

- outbox.target: NULL until the delivery routes the row (its channel's router names it).
- outbox.next_attempt_at: when a failed row (the head of its target) is tried again.
- outbox.receipt: what the sender answered (JSON), e.g. {"channel": "C0..", "ts": "17.."}.
- outbox.dropped_at / dropped_by / drop_reason: `cleanday outbox drop`, the only way out.
- outbox_leases: one row per lease ("drain"), taken with one conditional UPDATE.

Revision ID: 0012_outbox
Revises: 0010b_spend_totals
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0012_outbox"
down_revision = "0010b_spend_totals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("target", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("receipt", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("dropped_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("drop_reason", sa.Text(), nullable=True))
    # what waits, per channel and target, in order
    op.create_index("ix_outbox_waiting", "outbox", ["channel", "target", "delivered_at", "id"])
    leases = op.create_table(
        "outbox_leases",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
    )
    # the row exists from the start, so taking the lease is one conditional UPDATE
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    if op.get_context().dialect.name == "sqlite":
        epoch = epoch.replace(tzinfo=None)
    op.bulk_insert(leases, [{"name": "drain", "holder": None, "expires_at": epoch}])


def downgrade() -> None:
    op.drop_table("outbox_leases")
    op.drop_index("ix_outbox_waiting", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        for column in ("drop_reason", "dropped_by", "dropped_at", "receipt", "next_attempt_at"):
            batch.drop_column(column)
        batch.drop_column("target")
