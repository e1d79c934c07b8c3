"""The Notion webhook: the verification token Notion sent when the operator subscribed, kept in
the ledger database so that every service instance on it verifies the events' signatures.

- `notion_webhook`: one row (`name` "notion"), the first token received, until the operator
  forgets it (`cleanday notion webhook-token --forget`) to subscribe anew.

Revision ID: 0016_notion_webhook
Revises: 0015_trust
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_notion_webhook"
down_revision = "0015_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notion_webhook",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("verification_token", sa.String(length=256), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notion_webhook")
