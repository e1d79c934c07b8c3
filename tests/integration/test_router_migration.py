"""Migration 0002_routing creates exactly the routing tables the code uses; 0004 the budget
functions on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import cleanday.router.tables
from cleanday.db import current_revision, head_revision
from cleanday.errors import BudgetExceeded

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


def _reserve_functions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT proname FROM pg_proc WHERE starts_with(proname, 'cleanday_')"
            )
        )


async def test_the_budget_functions_come_and_go_with_migration_0004(engine: Engine) -> None:
    from alembic import command

    from cleanday.budget import SpendStore
    from cleanday.db import alembic_config, migrate, write_connection
    from cleanday.errors import ConfigError

    expected = ["cleanday_budget_fingerprint", "cleanday_key_spend_total", "cleanday_reserve"]
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        assert _reserve_functions(engine) == expected
    with write_connection(engine) as conn:
        command.downgrade(alembic_config(conn), "0003_listing")
    if postgres:
        assert _reserve_functions(engine) == []
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values ('b', 'env:K', 1.0, 'day', '[]', '{}', "
                "now(), now())"
            )
        with pytest.raises(ConfigError, match="migration 0004_budget_reserve"):
            await SpendStore(engine).reserve_async("b", 0.1)
    migrate(engine)
    assert current_revision(engine) == head_revision() == "0016_notion_webhook"
    if postgres:
        assert _reserve_functions(engine) == expected


async def test_the_running_spend_totals_come_and_go_with_migration_0010b(engine: Engine) -> None:
    """Down to 0010_webhook_deliveries the totals and triggers go (PostgreSQL's reservation is
    0004's function again, summing the period), and back up the totals are rebuilt from the
    rows: the same spend either way."""
    from alembic import command
    from sqlalchemy import inspect, text

    from cleanday.budget import SpendStore
    from cleanday.db import alembic_config, migrate, write_connection

    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values ('b', 'env:K', 1.0, 'month', '[]', "
                "'{}', :now, :now)"
            ),
            {"now": datetime.now(UTC)},
        )
    store = SpendStore(engine)
    r = await store.reserve_async("b", 0.25)
    await store.settle_async(r, 0.2)
    with write_connection(engine) as conn:
        command.downgrade(alembic_config(conn), "0010_webhook_deliveries")
    assert "key_spend_totals" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        triggers = conn.execute(
            text("select name from sqlite_master where type = 'trigger'")
            if engine.dialect.name == "sqlite"
            else text("select tgname from pg_trigger where not tgisinternal")
        ).all()
    assert triggers == []
    if engine.dialect.name == "postgresql":
        down = SpendStore(engine)
        r = await down.reserve_async("b", 0.25)
        await down.settle_async(r, 0.3)
        with pytest.raises(BudgetExceeded):
            await down.reserve_async("b", 0.6)
    else:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into key_spend (behavior, at, transport, model, estimate_usd, "
                    "cost_usd, status, tokens_in, tokens_out) values ('b', :at, '', '', 0.25, "
                    "0.3, 'settled', 0, 0)"
                ),
                {"at": datetime.now(UTC)},
            )
    engine.dispose()  # PostgreSQL's budget connections cached the old function's plan
    migrate(engine)
    up = SpendStore(engine)
    with pytest.raises(BudgetExceeded, match=r"\$0\.5000"):
        await up.reserve_async("b", 0.6)
    await up.reserve_async("b", 0.5)
    assert up.spend("b") == pytest.approx(1.0)
