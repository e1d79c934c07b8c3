"""Notion: the data sources cleanday writes to, the page of each row it wrote, and the pacing
that every service instance shares.

- `notion_data_sources`: one row per role (ledger, gate_failures, reviews): the database and
  data source IDs `cleanday notion init` created or adopted under the operator's parent page.
- `notion_pages`: one row per Notion row cleanday writes, by its key (the value of the data
  source's ID property). `page_id` is NULL while a create is uncertain (sent, no answer yet):
  the next attempt looks the row up by its key before creating it again.
- `notion_pacing`: the next free request slot (seconds since the epoch) of the integration
  token, taken under the row's lock, so that every instance together stays within Notion's
  average of 3 requests per second.

Revision ID: 0013_notion
Revises: 0012_outbox
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_notion"
down_revision = "0012_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notion_data_sources",
        sa.Column("role", sa.String(length=32), primary_key=True),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("parent_page_id", sa.String(length=64), nullable=False),
        sa.Column("database_id", sa.String(length=64), nullable=False),
        sa.Column("data_source_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "notion_pages",
        sa.Column("key", sa.String(length=300), primary_key=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=True),
        sa.Column("page_id", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notion_pages_role_behavior", "notion_pages", ["role", "behavior"])
    pacing = op.create_table(
        "notion_pacing",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("next_at", sa.Float(precision=53), nullable=False),
    )
    op.bulk_insert(pacing, [{"name": "notion", "next_at": 0.0}])


def downgrade() -> None:
    op.drop_table("notion_pacing")
    op.drop_index("ix_notion_pages_role_behavior", table_name="notion_pages")
    op.drop_table("notion_pages")
    op.drop_table("notion_data_sources")
