"""Routing tables: key bindings, spend per call, preset versions and their tier publications.

Revision ID: 0002_routing
Revises: 0001_ledger
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_routing"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_bindings",
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("key_ref", sa.String(length=500), nullable=False),
        sa.Column("cap_usd", sa.Float(), nullable=False),
        sa.Column("cadence", sa.String(length=8), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("guardrails", sa.JSON(), nullable=False),
        sa.Column("openrouter_key_hash", sa.String(length=200), nullable=True),
        sa.Column("preset_slug", sa.String(length=200), nullable=True),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("behavior"),
    )
    op.create_index("ix_routing_bindings_key_ref", "routing_bindings", ["key_ref"], unique=True)
    op.create_table(
        "key_spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("transport", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("estimate_usd", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_key_spend_behavior", "key_spend", ["behavior"])
    op.create_index("ix_key_spend_at", "key_spend", ["at"])
    op.create_table(
        "preset_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remote_version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("behavior", "version"),
    )
    op.create_index("ix_preset_versions_behavior", "preset_versions", ["behavior"])
    op.create_table(
        "preset_publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("behavior", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_preset_publications_behavior", "preset_publications", ["behavior"])


def downgrade() -> None:
    op.drop_table("preset_publications")
    op.drop_table("preset_versions")
    op.drop_table("key_spend")
    op.drop_table("routing_bindings")
