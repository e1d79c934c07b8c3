"""Alembic revisions; ids are fixed strings (0001_ledger, 0002_routing, ...)."""
