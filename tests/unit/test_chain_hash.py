"""The entry hash and the lean Pane of Glass row: the fast forms equal the plain definitions."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cleanday import chain
from cleanday.chain import Head, NewEntry
from cleanday.domain import Decision, Status, Tier
from cleanday.ledger.rows import pane_row as _pane_row
from cleanday.ledger.schemas import BehaviorRow

_text = st.text(max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).flatmap(
    lambda t: st.integers(-14 * 60, 14 * 60).map(
        lambda m: t.astimezone(timezone(timedelta(minutes=m)))
    )
)


def _plain_hash(
    prev: str, seq: int, behavior: str, kind: str, at: datetime, key: str, data: Any
) -> str:
    body = json.dumps(
        {
            "seq": seq,
            "behavior": behavior,
            "kind": kind,
            "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "key": key,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev + body).encode()).hexdigest()


@given(
    seq=st.integers(1, 2**62),
    behavior=_text,
    kind=_text,
    at=_times,
    key=_text,
    data=st.dictionaries(_text, _json, max_size=4),
)
def test_the_entry_hash_is_sha256_of_the_canonical_json_of_the_entry(
    seq: int, behavior: str, kind: str, at: datetime, key: str, data: dict[str, Any]
) -> None:
    prev = "ab" * 32
    expected = _plain_hash(prev, seq, behavior, kind, at, key, data)
    assert chain.entry_hash(prev, seq, behavior, kind, at, key, data) == expected
    # `link` stores the data as the canonical text its hash covers
    _, [row] = chain.link(Head(seq - 1, prev), [NewEntry(behavior, kind, at, key, data)], at)
    assert row["hash"] == expected
    assert json.loads(row["data"]) == data
    assert chain.entry_hash(prev, seq, behavior, kind, at, key, json.loads(row["data"])) == (
        expected
    )


def test_the_lean_pane_row_is_the_model_construct_row() -> None:
    now = datetime(2026, 11, 22, 8, tzinfo=UTC)
    values: dict[str, Any] = dict(
        name="tagger", tier=Tier.B, status=Status.ACTIVE, clean_days=9, candidate=True,
        last_gate_failure=date(2026, 11, 1), last_failure_gate="schema",
        last_failure_reason="tag outside list", tier_since=now, version=2, preset_version=3,
        updated_at=now, decision=Decision.PROMOTE,
    )  # fmt: skip
    assert set(values) == set(BehaviorRow.model_fields)
    lean, plain = _pane_row(**values), BehaviorRow.model_construct(**values)
    assert lean == plain
    assert lean.model_fields_set == plain.model_fields_set
    assert lean.model_dump_json() == plain.model_dump_json()
    assert lean.model_copy(update={"clean_days": 10}).clean_days == 10
