from datetime import datetime

import pytest

from cleanday.domain import Entry, EntryKind, Tier


def test_tiers_step_one_at_a_time_and_never_below_a_or_above_wings() -> None:
    assert Tier.A.up() is Tier.B
    assert Tier.C.up() is Tier.WINGS
    assert Tier.WINGS.up() is Tier.WINGS
    assert Tier.WINGS.down() is Tier.C
    assert Tier.A.down() is Tier.A


def test_entry_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Entry("x", EntryKind.REGISTERED, datetime(2026, 1, 1), "reg:x")
