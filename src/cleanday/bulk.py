"""Bulk writes below the ORM: many rows through the driver's executemany, values converted
once by column type.

The day close updates thousands of state rows, the batch ingest appends a batch's entries at
once and a bulk load appends millions; SQLAlchemy's per-parameter processing costs more than
the database does there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.models import UTCDateTime


def _converter(conn: Connection, column: sa.Column[Any]) -> Any:
    sqlite = conn.dialect.name == "sqlite"
    kind = column.type
    if isinstance(kind, sa.JSON):
        return _json_text
    if isinstance(kind, UTCDateTime):
        if sqlite:
            return _sqlite_ts
        return lambda v: None if v is None else v.astimezone(UTC)
    if isinstance(kind, sa.Date) and sqlite:
        return lambda v: None if v is None else v.isoformat()
    return None


class JsonText(str):
    """A JSON column value already serialized (the caller keeps the text, e.g. to recognise
    the stored value later); written as is."""

    __slots__ = ()


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, JsonText) else json.dumps(v)


def _sqlite_ts(v: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DATETIME storage format: naive UTC, always with microseconds
    (`isoformat` is several times cheaper than `strftime`, and the same text)."""
    if v is None:
        return None
    return v.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _placeholder(conn: Connection, column: sa.Column[Any]) -> str:
    if conn.dialect.name == "sqlite":
        return "?"
    return "CAST(%s AS JSON)" if isinstance(column.type, sa.JSON) else "%s"


def _convert(
    conn: Connection, table: sa.Table, cols: Sequence[str], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """Positional parameter tuples, each value converted once by its column's type."""
    convs = [(c, _converter(conn, table.c[c])) for c in cols]
    if all(f is None for _, f in convs):
        return [tuple(r[c] for c in cols) for r in rows]
    return [tuple(f(r[c]) if f else r[c] for c, f in convs) for r in rows]


def raw_insert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT many rows (all with the same keys) through the driver's executemany."""
    if not rows:
        return
    cols = list(rows[0])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(cols)}) "
        f"VALUES ({', '.join(_placeholder(conn, table.c[c]) for c in cols)})"
    )
    conn.exec_driver_sql(sql, _convert(conn, table, cols, rows))


def raw_update(conn: Connection, table: sa.Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE many rows by `key` (each dict holds the key and the same columns to set)."""
    if not rows:
        return
    cols = [c for c in rows[0] if c != key]
    sets = ", ".join(f"{c} = {_placeholder(conn, table.c[c])}" for c in cols)
    sql = f"UPDATE {table.name} SET {sets} WHERE {key} = {_placeholder(conn, table.c[key])}"
    conn.exec_driver_sql(sql, _convert(conn, table, [*cols, key], rows))
