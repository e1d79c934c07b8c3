"""Budgets per key: each model call's estimate reserved against its key's cap for the period,
then settled with what the call cost.

`periods` (day, week, month in the ledger's time zone), `base` (the rows and the cap rule),
`spend` (`SpendStore`, what callers use), and one module per database: `sqlite`, `postgres`;
`sql` holds the statements both run.
"""

from cleanday.budget.base import (
    RESERVATION_TTL,
    BindingRow,
    KeyReport,
    PrefetchedTx,
    PresetHead,
    PresetReader,
    Reservation,
)
from cleanday.budget.periods import period_bounds
from cleanday.budget.spend import SpendStore
from cleanday.budget.sql import SQL_BINDING, SqlAlchemyTx

__all__ = [
    "RESERVATION_TTL",
    "SQL_BINDING",
    "BindingRow",
    "KeyReport",
    "PrefetchedTx",
    "PresetHead",
    "PresetReader",
    "Reservation",
    "SpendStore",
    "SqlAlchemyTx",
    "period_bounds",
]
