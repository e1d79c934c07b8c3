"""Routing tables in the ledger database: key bindings, spend per call, preset versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

import cleanday.models as _ledger_models


class RoutingBinding(SQLModel, table=True):
    """One behavior's key reference, cap, transports and guardrails; never the secret."""

    __tablename__ = "routing_bindings"

    behavior: str = Field(primary_key=True, max_length=64)
    key_ref: str = Field(index=True, unique=True, max_length=500)
    cap_usd: float
    cadence: str = Field(max_length=8)
    transports: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    guardrails: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # set when cleanday provisioned the behavior's own OpenRouter key (its hash, not the key)
    openrouter_key_hash: str | None = Field(default=None, max_length=200)
    preset_slug: str | None = Field(default=None, max_length=200)
    bound_at: datetime
    updated_at: datetime


class KeySpend(SQLModel, table=True):
    """One model call against a key: a reservation of its estimate, settled with its cost."""

    __tablename__ = "key_spend"
    __table_args__ = (
        # the live reservations of a key, which a budget check adds to its running total
        Index(
            "ix_key_spend_reserved",
            "behavior",
            "at",
            sqlite_where=text("status = 'reserved'"),
            postgresql_where=text("status = 'reserved'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    behavior: str = Field(index=True, max_length=64)
    at: datetime = Field(index=True)
    run_id: str | None = Field(default=None, max_length=200)
    transport: str = Field(default="", max_length=32)
    model: str = Field(default="", max_length=200)
    estimate_usd: float
    cost_usd: float = 0.0
    # reserved | settled | released | refused_402
    status: str = Field(max_length=16)
    tokens_in: int = 0
    tokens_out: int = 0
    settled_at: datetime | None = None


class KeySpendTotal(SQLModel, table=True):
    """A key's settled spend in its current period, kept as calls settle (migration
    0010b_spend_totals: triggers on key_spend) so a budget check reads one row instead of
    summing the period's calls. Live reservations are added from key_spend's partial index."""

    __tablename__ = "key_spend_totals"

    behavior: str = Field(primary_key=True, max_length=64)
    period_start: datetime
    period_end: datetime
    settled_usd: float = 0.0


class PresetVersionRow(SQLModel, table=True):
    """One version of a behavior's preset; content is the PresetSpec as JSON."""

    __tablename__ = "preset_versions"
    __table_args__ = (UniqueConstraint("behavior", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    behavior: str = Field(index=True, max_length=64)
    version: int
    content_hash: str = Field(max_length=64)
    content: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    source: str = Field(default="registered", max_length=64)
    created_at: datetime
    # OpenRouter's version number once published there
    remote_version: int | None = None


class PresetPublication(SQLModel, table=True):
    """A preset version published for a tier (on registration at A, promotion, demotion)."""

    __tablename__ = "preset_publications"

    id: int | None = Field(default=None, primary_key=True)
    behavior: str = Field(index=True, max_length=64)
    tier: str = Field(max_length=8)
    version: int
    at: datetime
    reason: str = Field(default="", max_length=64)


ROUTING_TABLES = [
    RoutingBinding.__table__,  # type: ignore[attr-defined]
    KeySpend.__table__,  # type: ignore[attr-defined]
    KeySpendTotal.__table__,  # type: ignore[attr-defined]
    PresetVersionRow.__table__,  # type: ignore[attr-defined]
    PresetPublication.__table__,  # type: ignore[attr-defined]
]

# The ledger's tables (plain Core tables in `cleanday.models`) beside the routing tables in
# SQLModel's metadata: the migrations' autogenerate check compares this one metadata.
for _ledger_table in _ledger_models.metadata.tables.values():
    if _ledger_table.name not in SQLModel.metadata.tables:
        _ledger_table.to_metadata(SQLModel.metadata)
