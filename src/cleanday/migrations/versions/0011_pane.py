"""The Pane of Glass: sessions signed out before they expired (refused by every instance), and
an index for what waits for the operator across every behavior (pending items by status).

Revision ID: 0011_pane
Revises: 0005_state_fillfactor
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_pane"
down_revision = "0005_state_fillfactor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pane_signouts",
        sa.Column("session_id", sa.String(length=64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_out_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pane_signouts_expires_at", "pane_signouts", ["expires_at"])
    op.create_index("ix_pending_items_status_id", "pending_items", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_pending_items_status_id", table_name="pending_items")
    op.drop_index("ix_pane_signouts_expires_at", table_name="pane_signouts")
    op.drop_table("pane_signouts")
