"""Alembic migrations for the ledger database, packaged so `cleanday.db.migrate` works installed."""
