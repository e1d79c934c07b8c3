"""The ledger service: the HTTP API over `cleanday.ledger.LedgerService`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cleanday.service.app import build_service, create_app

__all__ = ["build_service", "create_app"]


def __getattr__(name: str) -> Any:
    # lazy, so that `cleanday version` and the CLI's formatting helpers skip FastAPI and the DB
    if name in __all__:
        from cleanday.service import app

        return getattr(app, name)
    raise AttributeError(f"module 'cleanday.service' has no attribute {name!r}")
