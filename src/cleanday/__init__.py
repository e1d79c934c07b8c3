"""cleanday: autonomous AI behaviors whose trust is earned, measured and revocable."""

from cleanday.domain import BehaviorState, Entry, EntryKind, Policy, Status, Tier
from cleanday.errors import CleandayError

__version__ = "0.1.0"

__all__ = [
    "BehaviorState",
    "CleandayError",
    "Entry",
    "EntryKind",
    "Policy",
    "Status",
    "Tier",
    "__version__",
]
