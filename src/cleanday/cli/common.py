"""What the verbs share: one-line errors, this run's settings and ledger, dates.

Nothing here imports the settings or the database stack at import time: every verb module
imports this one, and `cleanday version` must start without either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import typer

from cleanday.errors import CleandayError

if TYPE_CHECKING:
    from cleanday.config import Settings
    from cleanday.ledger import LedgerService

P = ParamSpec("P")
R = TypeVar("R")


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a CleandayError, or a database that cannot be used, into one line on stderr and
    exit 1: the message says what to fix."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CleandayError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except Exception as exc:
            problem = _database_problem(exc)
            if problem is None:
                raise
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _database_problem(exc: Exception) -> str | None:
    """What to fix when `exc` says the ledger database cannot be used; None for anything else."""
    if not type(exc).__module__.startswith("sqlalchemy."):
        return None  # not the database's (typer.Exit, a bad parameter): no need to load it
    from sqlalchemy.exc import OperationalError

    if not isinstance(exc, OperationalError):
        return None
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return (
        f"cannot use the ledger database {database_shown(current_settings())}: {reason}; "
        "check DATABASE_URL (or CLEANDAY_DATA_DIR) and that the database is up"
    )


def current_settings() -> Settings:
    """This run's settings, read fresh (not `get_settings`' cache): the environment of this
    run decides."""
    from cleanday.config import Settings

    return Settings()


def database_shown(settings: Settings) -> str:
    """The ledger database's URL, fit to print: its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def ensure_data_dir(settings: Settings) -> None:
    """Make the data directory when the ledger is the SQLite file inside it."""
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)


@contextmanager
def open_ledger() -> Iterator[LedgerService]:
    """The ledger of this run's settings (migrated to head), its connections closed afterwards."""
    from cleanday.ledger import LedgerService

    settings = current_settings()
    ensure_data_dir(settings)
    service = LedgerService.open(settings)
    try:
        yield service
    finally:
        service.engine.dispose()


@contextmanager
def read_ledger() -> Iterator[LedgerService]:
    """The ledger for a read verb: its schema checked, never migrated, and only the modules a
    read needs imported (`cleanday ledger`, `show`, `review`, `batch list` start fast)."""
    from cleanday.db import check_schema, make_engine
    from cleanday.domain import Policy
    from cleanday.ledger.service import LedgerService

    settings = current_settings()
    engine = make_engine(settings=settings)
    try:
        check_schema(engine, database_shown(settings))
        yield LedgerService(engine, Policy(timezone=settings.timezone))
    finally:
        engine.dispose()


def today(settings: Settings) -> date:
    """Today in the ledger's time zone."""
    return datetime.now(UTC).astimezone(ZoneInfo(settings.timezone)).date()


def parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date; write YYYY-MM-DD", param_hint=option
        ) from None


def parse_sunday(value: str, option: str) -> date:
    d = parse_date(value, option)
    if d.weekday() != 6:
        raise typer.BadParameter(
            f"{value} is a {d.strftime('%A')}; name the review week by its Sunday",
            param_hint=option,
        )
    return d
