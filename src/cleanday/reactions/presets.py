"""The preset lifecycle: a registration publishes the first version for tier A, a promotion
publishes the current version for the new tier (and records it as clean at the tier below), a
demotion restores the last version that was clean at the lower tier, as a new version.

The publications are written in the ledger's transaction; where the behavior's presets also
live on OpenRouter (bound with a management key), the remote publication is an outbox message
(`cleanday.runtime.wakeups` delivers it through the router).
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from cleanday.domain import Tier
from cleanday.notices import Demoted, Promoted, Registered
from cleanday.outbox import Message
from cleanday.presets import PresetStore, PresetVersion
from cleanday.reactions.base import Context
from cleanday.router.tables import RoutingBinding

CHANNEL = "openrouter"
_BINDINGS: sa.Table = RoutingBinding.__table__  # type: ignore[attr-defined]


def publish_at_registration(n: Registered, ctx: Context) -> Iterator[Message]:
    """A new behavior's first version is the one published for A (remotely, bind does it)."""
    assert n.behavior is not None
    store = _store(ctx)
    if n.new and not store.publications(n.behavior, conn=ctx.conn):
        store.publish(n.behavior, Tier.A, n.preset_version, "registration", conn=ctx.conn)
    return iter(())


def publish_for_promotion(n: Promoted, ctx: Context) -> Iterator[Message]:
    assert n.behavior is not None
    store = _store(ctx)
    if store.latest(n.behavior, conn=ctx.conn) is None:
        return  # never bound to a preset (a ledger used without the router): nothing to publish
    sunday = n.cause == "promotion"
    reason = f"promotion, review of {n.week}" if sunday else f"{n.cause} promotion"
    version = store.publish_for_tier(
        n.behavior, n.to_tier, reason, clean_below=sunday, conn=ctx.conn
    )
    yield from _remote(ctx, n.key, version, n.to_tier)


def restore_for_demotion(n: Demoted, ctx: Context) -> Iterator[Message]:
    assert n.behavior is not None
    store = _store(ctx)
    if store.latest(n.behavior, conn=ctx.conn) is None:
        return
    reason = f"demotion: {n.gate} failed" if n.gate else f"{n.cause} demotion"
    version = store.restore_for_demotion(n.behavior, n.to_tier, reason, conn=ctx.conn)
    yield from _remote(ctx, n.key, version, n.to_tier)


def _store(ctx: Context) -> PresetStore:
    now = ctx.now
    return PresetStore(ctx.conn.engine, clock=lambda: now)


def _remote(ctx: Context, key: str, version: PresetVersion, tier: Tier) -> Iterator[Message]:
    slug = ctx.conn.execute(
        sa.select(_BINDINGS.c.preset_slug).where(_BINDINGS.c.behavior == version.behavior)
    ).scalar()
    if not slug:
        return  # its presets live only here
    yield Message(
        CHANNEL,
        "preset_publication",
        f"preset:{version.behavior}:{key}",
        {"behavior": version.behavior, "version": version.version, "tier": tier.value},
        version.behavior,
    )
