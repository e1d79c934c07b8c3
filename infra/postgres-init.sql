-- One PostgreSQL for the scale-out stack: the ledger's database beside Temporal's.
CREATE DATABASE cleanday;
