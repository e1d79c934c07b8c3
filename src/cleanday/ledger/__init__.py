"""The ledger: registration, run reports, permits, sign-offs, decisions, overrides, the day and
Sunday closes, verify/rebuild/replay.

The ladder (`cleanday.ladder`) decides; the ledger stores what it is told, folds it into the
materialized state, writes down (as derived audit entries) whatever the ladder newly concluded,
and says what happened as notices (`cleanday.notices`) to the reactions of its unit of work.

Layout: `service` (the `LedgerService` facade), `unit_of_work`, `core` (what every use case
shares), one module per concern (`registration`, `runs`, `items`, `acts`, `reviews`, `days`,
`integrity`), `folding` (the fold and its conclusions), `reads` (every read), `schemas` (what
goes in and out), `rows` (state to row), `store` (rows below the use cases).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cleanday.chain import ChainProblem, VerifyResult
    from cleanday.ledger.schemas import (
        AnomalyIn,
        BatchResult,
        BehaviorRow,
        DayCloseResult,
        GateIn,
        ItemIn,
        LedgerEntryRow,
        Medians,
        PendingItemRow,
        Permit,
        RebuildResult,
        RegistrationResult,
        ReportResult,
        RunReport,
        StateDifference,
        SundayCloseResult,
    )
    from cleanday.ledger.service import LedgerService


_HOMES = {"ChainProblem": "cleanday.chain", "VerifyResult": "cleanday.chain"}
_HOMES["LedgerService"] = "cleanday.ledger.service"


def __getattr__(name: str) -> Any:
    """The exports, each imported when first asked for: `import cleanday.ledger.reads` (a read
    verb) does not load the service and every use case behind it."""
    import importlib

    if name in __all__:
        return getattr(importlib.import_module(_HOMES.get(name, "cleanday.ledger.schemas")), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnomalyIn",
    "BatchResult",
    "BehaviorRow",
    "ChainProblem",
    "DayCloseResult",
    "DecisionRow",
    "GateIn",
    "ItemIn",
    "LedgerEntryRow",
    "LedgerService",
    "Medians",
    "PendingItemRow",
    "Permit",
    "RebuildResult",
    "RegistrationResult",
    "ReportResult",
    "RunReport",
    "StateDifference",
    "SundayCloseResult",
    "VerifyResult",
]
