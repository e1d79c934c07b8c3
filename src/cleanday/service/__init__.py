"""The ledger service: the HTTP API over `cleanday.ledger.LedgerService`."""

from cleanday.service.app import build_service, create_app

__all__ = ["build_service", "create_app"]
