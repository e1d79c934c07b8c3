"""The hash chain on both back ends: appends link up, and verify names every tampered entry."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import cleanday.router.tables  # noqa: F401  (every table the migrations create)
from cleanday import chain
from cleanday.chain import NewEntry
from cleanday.db import current_revision, head_revision, is_sqlite, migrate, write_connection
from cleanday.models import T_BEHAVIORS, T_CHAIN_HEAD, T_ENTRIES

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def _behavior(conn: sa.Connection, name: str) -> None:
    conn.execute(
        sa.insert(T_BEHAVIORS).values(
            name=name,
            version=1,
            work_order={},
            content_hash="x" * 64,
            preset_hash="y" * 64,
            preset_version=1,
            key_ref=f"env:KEY_{name.upper()}",
            idle_days="skip",
            source_path=f"behaviors/{name}.yaml",
            registered_at=T0,
            updated_at=T0,
        )
    )


def _fill(engine: Engine, n: int = 6) -> None:
    with write_connection(engine) as conn:
        _behavior(conn, "tagger")
        _behavior(conn, "poster")
        head = chain.lock_head(conn, T0)
        entries = [
            NewEntry(
                "tagger" if i % 2 else "poster",
                "run_reported",
                T0 + timedelta(minutes=i),
                f"run:r{i}",
                {"run_id": f"r{i}", "cost_usd": 0.01 * i, "gates": []},
            )
            for i in range(1, n + 1)
        ]
        chain.append(conn, head, entries, T0)


def _verify(engine: Engine) -> chain.VerifyResult:
    with engine.connect() as conn:
        return chain.verify(conn)


def test_migrations_reach_head_and_match_the_models(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    migrate(engine)  # running it again is a no-op
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(engine: Engine) -> None:
    if not is_sqlite(engine):
        pytest.skip("SQLite only")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_appended_entries_link_into_one_verified_chain(engine: Engine) -> None:
    _fill(engine)
    result = _verify(engine)
    assert result.ok, result.summary()
    assert result.entries == 6
    assert result.head_seq == 6
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T_ENTRIES).order_by(T_ENTRIES.c.seq)).all()
    assert rows[0].prev_hash == chain.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))


def test_an_edited_entry_is_named_by_seq_behavior_and_kind(engine: Engine) -> None:
    _fill(engine)
    with write_connection(engine) as conn:
        conn.execute(sa.update(T_ENTRIES).where(T_ENTRIES.c.seq == 3).values(data={"run_id": "r3"}))
    result = _verify(engine)
    assert not result.ok
    [problem] = result.problems
    assert (problem.seq, problem.behavior, problem.kind) == (3, "tagger", "run_reported")
    assert "edited" in problem.problem


def test_an_edit_with_a_recomputed_hash_is_caught_by_the_next_link(engine: Engine) -> None:
    _fill(engine)
    with write_connection(engine) as conn:
        row = conn.execute(sa.select(T_ENTRIES).where(T_ENTRIES.c.seq == 2)).one()
        forged = chain.entry_hash(
            row.prev_hash, 2, row.behavior, row.kind, row.at, row.key, {"run_id": "forged"}
        )
        conn.execute(
            sa.update(T_ENTRIES)
            .where(T_ENTRIES.c.seq == 2)
            .values(data={"run_id": "forged"}, hash=forged)
        )
    result = _verify(engine)
    assert [(p.seq, p.behavior) for p in result.problems] == [(2, "poster")]


def test_a_deleted_entry_in_the_middle_is_named(engine: Engine) -> None:
    _fill(engine)
    with write_connection(engine) as conn:
        conn.execute(sa.delete(T_ENTRIES).where(T_ENTRIES.c.seq == 4))
    result = _verify(engine)
    assert not result.ok
    assert result.problems[0].seq == 4
    assert "missing" in result.problems[0].problem
    assert "seq 5 (tagger, run_reported)" in result.problems[0].problem


def test_deleting_the_newest_entry_is_detected_through_the_chain_head(engine: Engine) -> None:
    _fill(engine)
    with write_connection(engine) as conn:
        conn.execute(sa.delete(T_ENTRIES).where(T_ENTRIES.c.seq == 6))
    result = _verify(engine)
    assert not result.ok
    [problem] = result.problems
    assert problem.seq == 6
    assert "newest" in problem.problem and "missing" in problem.problem


def test_an_entry_inserted_after_the_head_is_named_even_with_a_valid_hash(
    engine: Engine,
) -> None:
    _fill(engine)
    with write_connection(engine) as conn:
        head = conn.execute(sa.select(T_CHAIN_HEAD)).one()
        at = T0 + timedelta(hours=1)
        data = {"reason": "sneaked in"}
        conn.execute(
            sa.insert(T_ENTRIES).values(
                seq=7,
                behavior="tagger",
                kind="override",
                at=at,
                key="override:sneaky",
                data=data,
                prev_hash=head.hash,
                hash=chain.entry_hash(
                    head.hash, 7, "tagger", "override", at, "override:sneaky", data
                ),
                recorded_at=at,
            )
        )
    result = _verify(engine)
    [problem] = result.problems
    assert (problem.seq, problem.behavior, problem.kind) == (7, "tagger", "override")
    assert "inserted" in problem.problem


def test_an_entry_inserted_in_the_middle_is_named(engine: Engine) -> None:
    _fill(engine)
    with write_connection(engine) as conn:
        # make room at seq 3 by renumbering the later entries, then forge a linked entry there
        for seq in range(6, 2, -1):
            conn.execute(sa.update(T_ENTRIES).where(T_ENTRIES.c.seq == seq).values(seq=seq + 1))
        prev = conn.execute(sa.select(T_ENTRIES.c.hash).where(T_ENTRIES.c.seq == 2)).scalar_one()
        at = T0 + timedelta(minutes=2, seconds=30)
        conn.execute(
            sa.insert(T_ENTRIES).values(
                seq=3,
                behavior="poster",
                kind="decision",
                at=at,
                key="decision:forged",
                data={},
                prev_hash=prev,
                hash=chain.entry_hash(prev, 3, "poster", "decision", at, "decision:forged", {}),
                recorded_at=at,
            )
        )
    result = _verify(engine)
    assert not result.ok
    first = result.problems[0]
    assert (first.seq, first.behavior, first.kind) == (3, "poster", "decision")


def test_the_day_close_reads_unfolded_entries_by_seq_range_not_by_kind(engine: Engine) -> None:
    """The day close must cost that day's entries whatever the history: its read is a range of
    the primary key, never a walk of the (kind, at) index over every run report ever made."""
    from cleanday.ledger import store

    _fill(engine, 30)
    with engine.connect() as conn:
        sql = store.pending_sql(conn)
        params = {"seq": 10, "upto": 20}
        if is_sqlite(engine):
            plan = " | ".join(
                str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
            )
            assert "(seq>? AND seq<?)" in plan, plan
        else:
            plan = " | ".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
        assert "kind_at" not in plan, plan


def test_state_rows_leave_room_on_their_pages_for_hot_updates_on_postgresql(
    engine: Engine,
) -> None:
    """Every run report rewrites a state row: on PostgreSQL the table keeps free space on each
    page (0005), so that the new version stays on its page and the dead one is pruned."""
    if is_sqlite(engine):
        pytest.skip("SQLite updates rows in place")
    with engine.connect() as conn:
        options = conn.exec_driver_sql(
            "SELECT reloptions FROM pg_class WHERE relname = 'behavior_states'"
        ).scalar_one()
    assert "fillfactor=40" in (options or [])
