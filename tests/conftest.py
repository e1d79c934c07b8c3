"""Shared fixtures: a migrated ledger database on each back end.

- `database_url`: the URL of a fresh, migrated, empty ledger database, once per back end —
  `sqlite` (a file in the test's tmp dir) and `postgresql` (a uniquely named database created
  on the server at `CLEANDAY_TEST_POSTGRES_URL`, dropped afterwards).
- `engine`: a SQLAlchemy engine (`cleanday.db.make_engine`) on that database.

Set `CLEANDAY_TEST_POSTGRES_URL=` (empty) to skip PostgreSQL; unset, it defaults to the local
server that `scripts/test` uses. A server that is configured but unreachable fails the test
loudly instead of silently skipping half the suite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url

DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# the test behaviors' step code lives in the tests package: allowed by name, as an operator
# would allow an installed module of theirs (subprocesses the tests start inherit it)
os.environ.setdefault("CLEANDAY_STEP_MODULES", "tests")


def _postgres_server_url() -> str:
    return os.environ.get("CLEANDAY_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)


def _admin_dsn(url: str) -> str:
    """A libpq DSN for the maintenance database on the same server (for CREATE/DROP)."""
    u = make_url(url).set(drivername="postgresql", database="postgres")
    return u.render_as_string(hide_password=False)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated ledger database; the test runs once on SQLite and once on PostgreSQL."""
    from cleanday.db import make_engine, migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        return

    server = _postgres_server_url()
    if not server:
        pytest.skip("CLEANDAY_TEST_POSTGRES_URL is empty: PostgreSQL tests skipped")
    import psycopg

    name = f"cleanday_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(_admin_dsn(server), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at CLEANDAY_TEST_POSTGRES_URL={server} is unreachable ({exc}); start "
            "it, or set CLEANDAY_TEST_POSTGRES_URL= (empty) to skip the PostgreSQL back end",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(drivername="postgresql+psycopg", database=name)
    url_s = url.render_as_string(hide_password=False)
    try:
        engine = make_engine(url_s)
        migrate(engine)
        engine.dispose()
        yield url_s
    finally:
        with psycopg.connect(_admin_dsn(server), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the fresh database of `database_url` (disposed after the test)."""
    from cleanday.db import make_engine

    eng = make_engine(database_url)
    yield eng
    eng.dispose()
