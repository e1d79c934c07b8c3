"""PostgreSQL: the budget reservation as one server-side function, one statement per check.

`cleanday_reserve` locks the key's binding row, then (in a statement of its own, so that under
READ COMMITTED it sees every racer that committed before the lock was granted) sums the
period's spend and inserts the reservation if the caller's plan is still current (the
fingerprint of binding and latest preset it planned with) and spend + estimate fits the cap.
It answers whether the plan was current, the spend it found, and the reservation's id (NULL
when nothing was reserved). The transaction does not wait for its WAL flush (see
cleanday.budget.postgres). SQLite needs none of this: its write lock is taken by BEGIN IMMEDIATE.

Revision ID: 0004_budget_reserve
Revises: 0003_listing
"""

from __future__ import annotations

from alembic import op

revision = "0004_budget_reserve"
down_revision = "0003_listing"
branch_labels = None
depends_on = None

FINGERPRINT = """
CREATE OR REPLACE FUNCTION cleanday_budget_fingerprint(
    b routing_bindings, preset_version integer, preset_hash text
) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT md5(ROW(b.key_ref, b.cap_usd, b.cadence, b.transports::text, b.guardrails::text,
                   b.openrouter_key_hash, b.preset_slug, preset_version, preset_hash)::text)
$$
"""

RESERVE = """
CREATE OR REPLACE FUNCTION cleanday_reserve(
    p_behavior text, p_fingerprint text, p_start timestamptz, p_end timestamptz,
    p_live_since timestamptz, p_at timestamptz, p_run_id text, p_transport text, p_model text,
    p_estimate double precision,
    OUT fresh boolean, OUT spent double precision, OUT id bigint
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM routing_bindings WHERE behavior = p_behavior FOR UPDATE;
    WITH b AS (
        SELECT b.cap_usd, cleanday_budget_fingerprint(b, p.version, p.content_hash) AS fp
        FROM routing_bindings b
        LEFT JOIN LATERAL (
            SELECT version, content_hash FROM preset_versions
            WHERE behavior = b.behavior ORDER BY version DESC LIMIT 1
        ) p ON true
        WHERE b.behavior = p_behavior
    ), s (total) AS (
        SELECT COALESCE(SUM(CASE WHEN k.status = 'reserved' THEN
            (CASE WHEN k.at >= p_live_since THEN k.estimate_usd ELSE 0 END)
            ELSE k.cost_usd END), 0)
        FROM key_spend k
        WHERE k.behavior = p_behavior AND k.at >= p_start AND k.at < p_end
    ), ins AS (
        INSERT INTO key_spend (behavior, at, run_id, transport, model, estimate_usd, cost_usd,
                               status, tokens_in, tokens_out)
        SELECT p_behavior, p_at, p_run_id, p_transport, p_model, p_estimate, 0, 'reserved', 0, 0
        FROM b, s
        WHERE b.fp = p_fingerprint AND s.total + p_estimate <= b.cap_usd + 1e-9
        RETURNING key_spend.id
    )
    SELECT b.fp = p_fingerprint, s.total, (SELECT ins.id FROM ins)
    INTO fresh, spent, id
    FROM b, s;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FINGERPRINT)
    op.execute(RESERVE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION IF EXISTS cleanday_reserve(text, text, timestamptz, timestamptz, "
        "timestamptz, timestamptz, text, text, text, double precision)"
    )
    op.execute(
        "DROP FUNCTION IF EXISTS cleanday_budget_fingerprint(routing_bindings, integer, text)"
    )
