"""Webhook deliveries in the ledger database: every accepted delivery is stored before it is
answered and started as a run when Temporal answers, and its signature is the replay store that
every service instance on this database shares (it replaces the per-instance
`<data dir>/webhook_signatures.db`, which this migration leaves alone: it is no longer read).

Revision ID: 0010_webhook_deliveries
Revises: 0011_pane
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_webhook_deliveries"
down_revision = "0011_pane"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=256), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("signature"),
    )
    op.create_index("ix_webhook_deliveries_started_id", "webhook_deliveries", ["started_at", "id"])
    op.create_index("ix_webhook_deliveries_expires_at", "webhook_deliveries", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_expires_at", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_started_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
