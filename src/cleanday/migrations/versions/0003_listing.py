"""Index ledger entries by (kind, at): the Sunday review reads the week's decisions, which are a
handful among hundreds of thousands of run reports in the same week.

Revision ID: 0003_listing
Revises: 0002_routing
"""

from __future__ import annotations

from alembic import op

revision = "0003_listing"
down_revision = "0002_routing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ledger_entries_kind_at", "ledger_entries", ["kind", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_kind_at", table_name="ledger_entries")
