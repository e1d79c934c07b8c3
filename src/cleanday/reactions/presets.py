"""The preset lifecycle: a registration publishes the first version for tier A, a promotion
publishes the current version for the new tier (and records it as clean at the tier below), a
demotion restores the last version that was clean at the lower tier, as a new version.

The publications are written in the ledger's transaction, each raising PresetPublished; where
the behavior's presets also live on OpenRouter (bound with a management key), its reaction
queues the remote publication (`cleanday.runtime.wakeups` delivers it through the router).
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from cleanday.domain import Tier
from cleanday.notices import Demoted, PresetPublished, Promoted, Registered
from cleanday.outbox import Message
from cleanday.presets import PresetStore
from cleanday.reactions.base import Context
from cleanday.router.tables import RoutingBinding

CHANNEL = "openrouter"
_BINDINGS: sa.Table = RoutingBinding.__table__  # type: ignore[attr-defined]


def publish_at_registration(n: Registered, ctx: Context) -> Iterator[Message]:
    """A new behavior's first version is the one published for A."""
    assert n.behavior is not None
    store = _store(ctx)
    if n.new and not store.publications(n.behavior, conn=ctx.conn):
        store.publish(n.behavior, Tier.A, n.preset_version, "registration", conn=ctx.conn)
        key = f"registered:v{n.version}"
        ctx.notify(PresetPublished(n.behavior, n.at, n.preset_version, Tier.A, "registration", key))
    return iter(())


def publish_for_promotion(n: Promoted, ctx: Context) -> Iterator[Message]:
    assert n.behavior is not None
    store = _store(ctx)
    if store.latest(n.behavior, conn=ctx.conn) is None:
        return iter(())  # never given a preset (a ledger used without the router)
    sunday = n.cause == "promotion"
    reason = f"promotion, review of {n.week}" if sunday else f"{n.cause} promotion"
    version = store.publish_for_tier(
        n.behavior, n.to_tier, reason, clean_below=sunday, conn=ctx.conn
    )
    ctx.notify(PresetPublished(n.behavior, n.at, version.version, n.to_tier, reason, n.key))
    return iter(())


def restore_for_demotion(n: Demoted, ctx: Context) -> Iterator[Message]:
    assert n.behavior is not None
    store = _store(ctx)
    current = store.latest(n.behavior, conn=ctx.conn)
    if current is None:
        return iter(())
    reason = f"demotion: {n.gate} failed" if n.gate else f"{n.cause} demotion"
    version = store.restore_for_demotion(n.behavior, n.to_tier, reason, conn=ctx.conn)
    restored = version.version != current.version
    ctx.notify(
        PresetPublished(n.behavior, n.at, version.version, n.to_tier, reason, n.key, restored)
    )
    return iter(())


def publish_remote(n: PresetPublished, ctx: Context) -> Iterator[Message]:
    """Where the behavior's presets also live on OpenRouter (bound with a management key, so it
    has a preset slug there), the publication goes there too."""
    slug = ctx.conn.execute(
        sa.select(_BINDINGS.c.preset_slug).where(_BINDINGS.c.behavior == n.behavior)
    ).scalar()
    if not slug:
        return  # its presets live only here (and at registration bind publishes the first)
    yield Message(
        CHANNEL,
        "preset_publication",
        f"preset:{n.behavior}:{n.key}",
        {"behavior": n.behavior, "version": n.version, "tier": n.tier.value},
        n.behavior,
    )


def _store(ctx: Context) -> PresetStore:
    now = ctx.now
    return PresetStore(ctx.conn.engine, clock=lambda: now)
