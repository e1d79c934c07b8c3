"""Permits granted from the chain: an index for the newest tier-change and status entry of one
behavior (`cleanday.ledger.permits.chain_standing`, read on every permit), so the read does not
walk back over the behavior's run reports since its last tier change.

Revision ID: 0015_trust
Revises: 0013_notion
"""

from __future__ import annotations

from alembic import op

revision = "0015_trust"
down_revision = "0013_notion"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_behavior_kind_seq", "ledger_entries", ["behavior", "kind", "seq"]
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_behavior_kind_seq", table_name="ledger_entries")
