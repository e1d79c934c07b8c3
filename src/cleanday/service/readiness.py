"""What `/readyz` checks: the ledger database answers, its schema is the one this cleanday
ships (head), and Temporal answers. Each check says what is wrong and what to do."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine

from cleanday.config import Settings
from cleanday.logs import redact

CHECK_TIMEOUT_S = 3.0

TemporalProbe = Callable[[], Awaitable[None]]
"""Returns when Temporal answers a health check; raises otherwise."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def database(engine: Engine) -> list[Check]:
    """The database answers, and its schema is at head."""
    from cleanday.db import head_revision

    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            current = _revision(conn)
    except Exception as exc:
        return [
            Check("database", False, f"the ledger database does not answer: {_said(exc)}"),
            Check("schema", False, "unknown: the database does not answer"),
        ]
    head = head_revision()
    schema = (
        Check("schema", True, f"at head ({head})")
        if current == head
        else Check(
            "schema",
            False,
            f"at {current or 'nothing (empty database)'}, this cleanday needs {head}: "
            "run `cleanday migrate`",
        )
    )
    return [Check("database", True, "answers"), schema]


def _revision(conn: sa.Connection) -> str | None:
    """Alembic's record of the schema, read directly (its MigrationContext logs two lines
    each time it is made, which a probe every few seconds would fill the log with)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


async def temporal(probe: TemporalProbe, address: str) -> Check:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return Check("temporal", False, f"{address} did not answer within {CHECK_TIMEOUT_S:g}s")
    except Exception as exc:
        return Check("temporal", False, f"{address} does not answer: {_said(exc)}")
    return Check("temporal", True, f"{address} answers")


def settings_probe(settings: Settings) -> TemporalProbe:
    """Connects once (the client is kept), then asks Temporal's health service each time."""
    from cleanday.runtime.connect import connect

    client = None

    async def probe() -> None:
        nonlocal client
        if client is None:
            client = await connect(settings)  # connecting checks the server answers
            return
        await client.service_client.check_health()

    return probe


def _said(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"{type(exc).__name__}: {text}"[:300])
