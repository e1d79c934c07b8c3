"""HTTP routes of the ledger service, one module per resource."""
