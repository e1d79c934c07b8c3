"""The hash chain over ledger entries: appending under a lock, and verifying what was stored.

Each entry's hash is sha256(prev_hash + canonical JSON of its fields), one global chain in
`seq` order; the `chain_head` row remembers the last seq and hash so that deleting the newest
entry is seen too. The chain is not keyed: it makes an edit to history detectable, not
impossible (someone who rewrites every later entry and the head can hide an edit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import Connection

from cleanday.bulk import JsonText, raw_insert
from cleanday.db import is_sqlite
from cleanday.models import T_CHAIN_HEAD, T_ENTRIES

GENESIS = "0" * 64


def canonical_time(at: datetime) -> str:
    utc = at.astimezone(UTC)
    if utc.year < 1000:  # strftime's %Y does not pad; the hashes of such entries keep it
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # the same text as the strftime above, several times cheaper (it runs for every entry)
    return utc.replace(tzinfo=None).isoformat("T", "microseconds") + "Z"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str, seq: int, behavior: str, kind: str, at: datetime, key: str, data: Any
) -> str:
    """sha256 of `prev_hash` + the canonical JSON of
    {"seq", "behavior", "kind", "at": canonical_time(at), "key", "data"}."""
    return _entry_hash(prev_hash, seq, behavior, kind, at, key, canonical_json(data))


_string = json.JSONEncoder(ensure_ascii=False).encode  # a JSON string, as canonical_json writes it


def _entry_hash(
    prev_hash: str, seq: int, behavior: str, kind: str, at: datetime, key: str, data_json: str
) -> str:
    # the canonical JSON of the entry written out by hand around its data's canonical JSON
    # (keys in sorted order), so that `link` serializes the data once, for the hash and the
    # stored column alike
    body = (
        f'{{"at":{_string(canonical_time(at))},"behavior":{_string(behavior)},'
        f'"data":{data_json},"key":{_string(key)},"kind":{_string(kind)},"seq":{int(seq)}}}'
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True)
class NewEntry:
    """An entry to append; seq and hashes are assigned by the chain."""

    behavior: str
    kind: str
    at: datetime
    key: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


_Q_HEAD = sa.select(T_CHAIN_HEAD.c.seq, T_CHAIN_HEAD.c.hash).where(T_CHAIN_HEAD.c.id == 1)
_Q_HEAD_FOR_UPDATE = _Q_HEAD.with_for_update()
_UPDATE_HEAD = sa.update(T_CHAIN_HEAD).where(T_CHAIN_HEAD.c.id == 1)


def lock_head(conn: Connection, now: datetime) -> Head:
    """Take the chain's append lock for this transaction and return the current head.

    SQLite: the transaction began IMMEDIATE (see `cleanday.db.write_connection`), which already
    holds the database's single write lock. PostgreSQL: lock the chain_head row FOR UPDATE.
    """
    query = _Q_HEAD if is_sqlite(conn) else _Q_HEAD_FOR_UPDATE
    row = conn.execute(query).first()
    if row is None:
        # first append ever; on PostgreSQL a concurrent first insert fails on the primary key
        conn.execute(
            sa.insert(T_CHAIN_HEAD).values(id=1, seq=0, hash=GENESIS, folded_seq=0, updated_at=now)
        )
        if not is_sqlite(conn):
            conn.execute(query).first()
        return Head(0, GENESIS)
    return Head(int(row.seq), str(row.hash))


def append(
    conn: Connection, head: Head, entries: Sequence[NewEntry], now: datetime
) -> tuple[Head, list[dict[str, Any]]]:
    """Append entries after `head` (which the caller locked); returns the new head and rows."""
    head, rows = link(head, entries, now)
    if rows:
        raw_insert(conn, T_ENTRIES, rows)
        conn.execute(_UPDATE_HEAD, {"seq": head.seq, "hash": head.hash, "updated_at": now})
    return head, rows


def set_head(conn: Connection, head: Head, now: datetime) -> None:
    """Move the chain_head row to `head` (after the caller inserted the rows `link` made)."""
    conn.execute(_UPDATE_HEAD, {"seq": head.seq, "hash": head.hash, "updated_at": now})


def link(
    head: Head, entries: Sequence[NewEntry], now: datetime
) -> tuple[Head, list[dict[str, Any]]]:
    """The rows that would follow `head` (seq and hashes assigned), without writing them: the
    batch ingest links a whole batch in memory and inserts it once. Each row's `data` is the
    canonical JSON text the hash covers (a `JsonText`, written to the column as is)."""
    rows: list[dict[str, Any]] = []
    seq, prev = head.seq, head.hash
    for e in entries:
        seq += 1
        data = JsonText(canonical_json(e.data))  # stored as the text the hash covers
        h = _entry_hash(prev, seq, e.behavior, e.kind, e.at, e.key, data)
        rows.append(
            {
                "seq": seq,
                "behavior": e.behavior,
                "kind": e.kind,
                "at": e.at,
                "key": e.key,
                "data": data,
                "prev_hash": prev,
                "hash": h,
                "recorded_at": now,
            }
        )
        prev = h
    return Head(seq, prev), rows


class ChainProblem(BaseModel):
    """One place where the stored entries do not match the chain."""

    seq: int
    behavior: str | None
    kind: str | None
    problem: str


class StateProblem(BaseModel):
    """One stored row (a materialized state, a sign-off) that says other than the chain."""

    behavior: str
    what: str
    problem: str


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    problems: list[ChainProblem]
    # stored rows checked against the chain (cleanday.ledger.checks); empty from `verify` alone
    state_problems: list[StateProblem] = []
    states: int = 0

    def summary(self) -> str:
        if self.ok:
            checked = f", {self.states} stored states match it" if self.states else ""
            return f"ledger verified: {self.entries} entries, chain intact{checked}"
        n = len(self.problems) + len(self.state_problems)
        lines = [f"ledger does NOT verify: {n} problem(s)"]
        lines += [f"  seq {p.seq} ({p.behavior}, {p.kind}): {p.problem}" for p in self.problems]
        lines += [f"  {p.behavior} {p.what}: {p.problem}" for p in self.state_problems]
        return "\n".join(lines)

    @property
    def chain_ok(self) -> bool:
        return not self.problems


def verify(conn: Connection, batch: int = 5000) -> VerifyResult:
    """Walk every entry in seq order and name each one that was edited, inserted or deleted."""
    problems: list[ChainProblem] = []
    expected_seq, prev_hash = 1, GENESIS
    prev_row: Any = None
    count = 0
    last_seq = 0
    for row in _stream(conn, batch):
        count += 1
        if row.seq > expected_seq:
            missing = (
                f"entry seq {expected_seq} is missing"
                if row.seq == expected_seq + 1
                else f"entries seq {expected_seq}..{row.seq - 1} are missing"
            )
            problems.append(
                ChainProblem(
                    seq=expected_seq,
                    behavior=None,
                    kind=None,
                    problem=f"{missing} (deleted); the next entry, seq {row.seq} "
                    f"({row.behavior}, {row.kind}), links to an entry that is gone",
                )
            )
        elif row.prev_hash != prev_hash and prev_row is not None:
            problems.append(
                ChainProblem(
                    seq=prev_row.seq,
                    behavior=prev_row.behavior,
                    kind=prev_row.kind,
                    problem=f"does not match the hash entry seq {row.seq} chained to: it was "
                    "edited or inserted after the fact",
                )
            )
        recomputed = entry_hash(
            row.prev_hash, row.seq, row.behavior, row.kind, row.at, row.key, row.data
        )
        if recomputed != row.hash:
            problems.append(
                ChainProblem(
                    seq=row.seq,
                    behavior=row.behavior,
                    kind=row.kind,
                    problem="edited: its contents no longer match its hash",
                )
            )
        prev_hash, prev_row = row.hash, row
        expected_seq = row.seq + 1
        last_seq = row.seq
    head = conn.execute(sa.select(T_CHAIN_HEAD.c.seq, T_CHAIN_HEAD.c.hash)).first()
    head_seq, head_hash = (int(head.seq), str(head.hash)) if head else (0, GENESIS)
    if head_seq > last_seq:
        span = f"seq {head_seq}" if head_seq == last_seq + 1 else f"seq {last_seq + 1}..{head_seq}"
        problems.append(
            ChainProblem(
                seq=last_seq + 1,
                behavior=None,
                kind=None,
                problem=f"the newest entries ({span}) are missing: deleted after the chain head "
                "recorded them",
            )
        )
    elif head_seq < last_seq:
        for extra in _rows_after(conn, head_seq):
            problems.append(
                ChainProblem(
                    seq=extra.seq,
                    behavior=extra.behavior,
                    kind=extra.kind,
                    problem="inserted: it lies beyond the chain head",
                )
            )
    elif prev_row is not None and head_hash != prev_hash:
        problems.append(
            ChainProblem(
                seq=prev_row.seq,
                behavior=prev_row.behavior,
                kind=prev_row.kind,
                problem="the newest entry does not match the chain head: edited or replaced",
            )
        )
    return VerifyResult(ok=not problems, entries=count, head_seq=head_seq, problems=problems)


def _stream(conn: Connection, batch: int) -> Iterable[Any]:
    """Entries in seq order, in keyset pages so memory stays flat on millions of entries."""
    after = -1
    cols = [
        T_ENTRIES.c.seq,
        T_ENTRIES.c.behavior,
        T_ENTRIES.c.kind,
        T_ENTRIES.c.at,
        T_ENTRIES.c.key,
        T_ENTRIES.c.data,
        T_ENTRIES.c.prev_hash,
        T_ENTRIES.c.hash,
    ]
    while True:
        rows = conn.execute(
            sa.select(*cols).where(T_ENTRIES.c.seq > after).order_by(T_ENTRIES.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def _rows_after(conn: Connection, seq: int) -> list[Any]:
    return list(
        conn.execute(
            sa.select(T_ENTRIES.c.seq, T_ENTRIES.c.behavior, T_ENTRIES.c.kind)
            .where(T_ENTRIES.c.seq > seq)
            .order_by(T_ENTRIES.c.seq)
        ).all()
    )
