"""The ladder: a behavior's state as a pure function of its entries, the policy and "now".

API (implementation pending; see issue 2):
- compute_state(behavior, entries, policy, now) -> BehaviorState
- Fold accumulator for incremental use: initial(behavior), apply(acc, entry, policy),
  view(acc, policy, now) -> BehaviorState; acc.to_json()/Accumulator.from_json().
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cleanday.domain import BehaviorState, Entry, Policy


def compute_state(
    behavior: str, entries: Iterable[Entry], policy: Policy, now: datetime
) -> BehaviorState:
    raise NotImplementedError("ladder not implemented yet")
