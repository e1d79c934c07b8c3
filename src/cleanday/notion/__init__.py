"""Notion, where the operator reads the ledger and answers the Sunday review: its data sources
(`schema`, `setup`), the rows cleanday keeps there (`store`, `sender`), and the request pacing
every instance shares (`pacing`)."""
