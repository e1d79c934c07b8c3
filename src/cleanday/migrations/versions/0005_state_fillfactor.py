"""Keep behavior_states compact on PostgreSQL: every run report rewrites its behavior's state
row, and the day close rewrites every row it refreshes. At the default fillfactor (100) each of
those updates lands on another page and leaves a dead row version plus new index entries
behind, so until a VACUUM runs (never, where autovacuum is off) the table grows by a row
version per report and the Pane of Glass and the Sunday candidates query read all of them.
With room left on every page, an update stays on its page as a HOT update (no new index
entries) and the page's dead versions are pruned the next time it is read; the table stays
about two and a half times its live size. SQLite updates rows in place and needs nothing.

Existing pages are repacked at the next VACUUM FULL (or CLUSTER) of the table.

Revision ID: 0005_state_fillfactor
Revises: 0004_budget_reserve
"""

from __future__ import annotations

from alembic import op

revision = "0005_state_fillfactor"
down_revision = "0004_budget_reserve"
branch_labels = None
depends_on = None

# pages filled to 40% when rows are inserted: room for a new version of every row on the page
# (the day close updates all of them in one transaction) before the dead ones can be pruned,
# with a margin for rows that grow (a state row is about 600 bytes; at 50 the last row of
# each page no longer fits and 1 update in 7 leaves its page)
STATE_FILLFACTOR = 40


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE behavior_states SET (fillfactor = {STATE_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE behavior_states RESET (fillfactor)")
