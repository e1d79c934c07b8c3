"""cleanday: autonomous AI behaviors whose trust is earned, measured and revocable.

The names below are imported on first use: importing any module of the package runs this file,
and the CLI's quick read path (`cleanday.cli.quick`) must not pay for pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name == "CleandayError":
        from cleanday.errors import CleandayError

        return CleandayError
    if name in __all__:
        from cleanday import domain

        return getattr(domain, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
