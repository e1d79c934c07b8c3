"""Migration 0002_routing creates exactly the routing tables the code uses."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import cleanday.router.tables
from cleanday.db import current_revision, head_revision

ROUTING = {t.name for t in cleanday.router.tables.ROUTING_TABLES}


def _touches_routing(diff: Any) -> bool:
    if isinstance(diff, list):
        return any(_touches_routing(d) for d in diff)
    return any(
        getattr(part, "name", None) in ROUTING
        or getattr(getattr(part, "table", None), "name", None) in ROUTING
        or part in ROUTING
        for part in diff
    )


def test_routing_migration_matches_the_routing_tables(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if _touches_routing(d)] == []
