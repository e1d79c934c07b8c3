"""The ledger database: engine construction (SQLite or PostgreSQL) and Alembic migrations."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError

from cleanday.config import Settings, get_settings
from cleanday.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# How long a SQLite writer waits for another writer before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Execution option that makes a SQLite transaction take the write lock at BEGIN, so that two
# writers serialize instead of one failing later with "database is locked" on upgrade.
WRITE = "cleanday_write"


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str | None = None, *, settings: Settings | None = None, **kw: Any) -> Engine:
    """An engine for the ledger database.

    `url` defaults to `Settings.resolved_database_url` (a SQLite file in the data directory,
    or `DATABASE_URL`). SQLite runs in WAL mode with a busy timeout and foreign keys on;
    PostgreSQL URLs are normalized to the psycopg (v3) driver.
    """
    if url is None:
        settings = settings or get_settings()
        url = settings.resolved_database_url
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, **kw)
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, **kw)
    raise ConfigError(
        f"DATABASE_URL {parsed.render_as_string(hide_password=True)!r}: unsupported database; "
        "use sqlite:///path/to/ledger.db or postgresql+psycopg://user@host/dbname"
    )


def _sqlite_engine(url: str, **kw: Any) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False}, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one write transaction (committed on success, rolled back on error)."""
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        yield conn


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic Config pointing at the migrations packaged inside cleanday."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (Alembic upgrade), inside one transaction."""
    from alembic import command

    with write_connection(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


def head_revision() -> str:
    """The newest migration this installation of cleanday ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "cleanday ships no migrations"
    return head


_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+)$", re.M)


@functools.cache
def shipped_head() -> str:
    """The newest migration this installation ships, read from the migration files' own
    `revision` / `down_revision` lines: what `head_revision` says, without importing Alembic
    (the read verbs must start fast)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        fields = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" not in fields:
            continue
        revisions.add(ast.literal_eval(fields["revision"].strip()))
        down = ast.literal_eval(fields.get("down_revision", "None").strip())
        parents.update((down,) if isinstance(down, str) else tuple(down or ()))
    heads = revisions - parents
    if len(heads) != 1:
        return head_revision()  # unusual layout: let Alembic say
    return heads.pop()


def stored_revision(engine: Engine) -> str | None:
    """The schema revision the database records (None when it has none yet), read with one
    query rather than Alembic's migration context."""
    with engine.connect() as conn:
        try:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except DBAPIError:
            return None


def check_schema(engine: Engine, shown: str) -> None:
    """Refuse to read a database whose schema is not this cleanday's: say how to migrate it.

    The read verbs call this instead of migrating (a read must not change the schema)."""
    stored, head = stored_revision(engine), shipped_head()
    if stored == head:
        return
    if stored is None:
        raise ConfigError(
            f"the ledger database {shown} has no cleanday schema yet; run `cleanday migrate` "
            "(or register a Work Order: `cleanday register behaviors/`)"
        )
    raise ConfigError(
        f"the ledger database {shown} is at schema revision {stored}, and this cleanday reads "
        f"revision {head}; run `cleanday migrate`"
    )


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
