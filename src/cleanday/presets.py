"""Preset versions: every change a new version, history kept, any version restorable, per tier."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from cleanday.budget import PresetReader, SqlAlchemyTx
from cleanday.domain import Tier
from cleanday.errors import ConfigError, UnknownBehaviorError
from cleanday.models import T_BEHAVIORS
from cleanday.router.tables import PresetPublication, PresetVersionRow
from cleanday.workorder import PresetSpec

# parameters where a tier override may only lower the value: more autonomy, tighter sampling
_TIGHTEN_DOWN = frozenset(
    {"temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "frequency_penalty"}
)


def content_hash(spec: PresetSpec) -> str:
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_tightening(spec: PresetSpec) -> None:
    """Tier overrides may tighten parameters, never loosen them."""
    for tier, overrides in spec.tiers.items():
        for name, value in overrides.items():
            base = spec.parameters.get(name)
            if (
                name in _TIGHTEN_DOWN
                and isinstance(base, int | float)
                and isinstance(value, int | float)
                and value > base
            ):
                raise ConfigError(
                    f"preset {spec.name}: tier {tier} sets {name}={value} above the base "
                    f"{base}; per-tier overrides may only tighten parameters"
                )


@dataclass(frozen=True)
class PresetVersion:
    behavior: str
    version: int
    content_hash: str
    spec: PresetSpec
    source: str
    created_at: datetime

    def parameters_for(self, tier: Tier) -> dict[str, Any]:
        """Base parameters with every tier override up to `tier` applied, in tier order."""
        params = dict(self.spec.parameters)
        for t in Tier:
            if t.rank > tier.rank:
                break
            params.update(self.spec.tiers.get(t, {}))
        return params


@dataclass(frozen=True)
class Publication:
    """A version published for a tier, when, and why (registration, promotion, demotion)."""

    behavior: str
    tier: str
    version: int
    at: datetime
    reason: str


class PresetPublisher(Protocol):
    """Where published versions also go (OpenRouter's presets API when a management key is set)."""

    async def publish(self, version: PresetVersion, tier: Tier) -> int | None: ...


def _row_to_version(row: Any) -> PresetVersion:
    created = (
        row.created_at.replace(tzinfo=UTC) if row.created_at.tzinfo is None else row.created_at
    )
    return PresetVersion(
        behavior=row.behavior,
        version=row.version,
        content_hash=row.content_hash,
        spec=PresetSpec.model_validate(row.content),
        source=row.source,
        created_at=created,
    )


_VERSIONS: sa.Table = PresetVersionRow.__table__  # type: ignore[attr-defined]
_PUBLICATIONS: sa.Table = PresetPublication.__table__  # type: ignore[attr-defined]


class PresetStore:
    """Preset versions and their per-tier publications in the ledger database.

    Every write takes an optional `conn`: the ledger records a registration's version and a
    promotion's or demotion's publication inside its own transaction; without one, each call
    is its own transaction. A new version also becomes the behavior's `preset_version` in the
    ledger, so there is one numbering: the ledger's.
    """

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self._parsed: dict[tuple[str, int, str], PresetVersion] = {}

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    @contextmanager
    def _tx(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as own:
            yield own

    def record(
        self,
        behavior: str,
        spec: PresetSpec,
        source: str = "registered",
        *,
        conn: Connection | None = None,
    ) -> PresetVersion:
        """Store `spec` as a new version unless it equals the current one."""
        check_tightening(spec)
        digest = content_hash(spec)
        with self._tx(conn) as c:
            latest = self._latest_row(c, behavior)
            if latest is not None and latest.content_hash == digest and source == "registered":
                return _row_to_version(latest)
            return self._insert(c, behavior, spec, digest, source, latest)

    def _insert(
        self,
        conn: Connection,
        behavior: str,
        spec: PresetSpec,
        digest: str,
        source: str,
        latest: Any,
    ) -> PresetVersion:
        version = int(latest.version) + 1 if latest is not None else 1
        values = {
            "behavior": behavior,
            "version": version,
            "content_hash": digest,
            "content": spec.model_dump(mode="json"),
            "source": source[:64],
            "created_at": self._now(),
        }
        conn.execute(sa.insert(_VERSIONS).values(**values))
        conn.execute(
            sa.update(T_BEHAVIORS)
            .where(T_BEHAVIORS.c.name == behavior)
            .values(preset_version=version)
        )
        return _row_to_version(self._row(conn, behavior, version))

    @staticmethod
    def _latest_row(conn: Connection, behavior: str) -> Any:
        return conn.execute(
            sa.select(_VERSIONS)
            .where(_VERSIONS.c.behavior == behavior)
            .order_by(_VERSIONS.c.version.desc())
            .limit(1)
        ).first()

    @staticmethod
    def _row(conn: Connection, behavior: str, version: int) -> Any:
        return conn.execute(
            sa.select(_VERSIONS).where(
                _VERSIONS.c.behavior == behavior, _VERSIONS.c.version == version
            )
        ).first()

    def latest(self, behavior: str, *, conn: Connection | None = None) -> PresetVersion | None:
        """The latest version, or None when the behavior has none yet."""
        with self._tx(conn) as c:
            row = self._latest_row(c, behavior)
        return _row_to_version(row) if row is not None else None

    def current(self, behavior: str, tx: PresetReader | None = None) -> PresetVersion:
        """The latest version. Read on every model call (inside the budget transaction when
        `tx` is given), so the parsed spec is cached by version and content hash."""
        if tx is None:
            with self.engine.connect() as conn:
                return self.current(behavior, SqlAlchemyTx(conn))
        head = tx.latest_preset(behavior)
        if head is None:
            raise UnknownBehaviorError(
                f"behavior {behavior!r} has no preset; register its Work Order first"
            )
        key = (behavior, head.version, head.content_hash)
        cached = self._parsed.get(key)
        if cached is None:
            content = head.content if isinstance(head.content, dict) else json.loads(head.content)
            created = head.created_at
            cached = PresetVersion(
                behavior=behavior,
                version=head.version,
                content_hash=head.content_hash,
                spec=PresetSpec.model_validate(content),
                source=head.source,
                created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
            )
            if len(self._parsed) > 1024:
                self._parsed.clear()
            self._parsed[key] = cached
        return cached

    def get(self, behavior: str, version: int, *, conn: Connection | None = None) -> PresetVersion:
        with self._tx(conn) as c:
            row = self._row(c, behavior, version)
            if row is None:
                count = c.execute(
                    sa.select(sa.func.count()).where(_VERSIONS.c.behavior == behavior)
                ).scalar_one()
                raise UnknownBehaviorError(
                    f"behavior {behavior!r} has no preset version {version} "
                    f"(it has {count}); see `cleanday preset history {behavior}`"
                )
        return _row_to_version(row)

    def remote_version(self, behavior: str, version: int) -> int | None:
        """OpenRouter's version number for this version, once published there."""
        with self.engine.connect() as conn:
            row = self._row(conn, behavior, version)
        return row.remote_version if row is not None else None

    def set_remote_version(self, behavior: str, version: int, remote: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(_VERSIONS)
                .where(_VERSIONS.c.behavior == behavior, _VERSIONS.c.version == version)
                .values(remote_version=remote)
            )

    def history(self, behavior: str) -> list[PresetVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_VERSIONS)
                .where(_VERSIONS.c.behavior == behavior)
                .order_by(_VERSIONS.c.version)
            ).all()
        return [_row_to_version(r) for r in rows]

    def restore(
        self, behavior: str, version: int, *, conn: Connection | None = None
    ) -> PresetVersion:
        """A new version whose content equals `version`'s; history is never rewritten."""
        with self._tx(conn) as c:
            old = self.get(behavior, version, conn=c)
            latest = self._latest_row(c, behavior)
            return self._insert(
                c, behavior, old.spec, old.content_hash, f"restored v{version}", latest
            )

    def publications(self, behavior: str, *, conn: Connection | None = None) -> list[Publication]:
        with self._tx(conn) as c:
            rows = c.execute(
                sa.select(_PUBLICATIONS)
                .where(_PUBLICATIONS.c.behavior == behavior)
                .order_by(_PUBLICATIONS.c.id)
            ).all()
        return [
            Publication(
                r.behavior,
                r.tier,
                r.version,
                r.at.replace(tzinfo=UTC) if r.at.tzinfo is None else r.at,
                r.reason,
            )
            for r in rows
        ]

    def publish(
        self,
        behavior: str,
        tier: Tier,
        version: int,
        reason: str,
        *,
        conn: Connection | None = None,
    ) -> None:
        """Record `version` as the one published for `tier`, and why."""
        with self._tx(conn) as c:
            c.execute(
                sa.insert(_PUBLICATIONS).values(
                    behavior=behavior,
                    tier=tier.value,
                    version=version,
                    at=self._now(),
                    reason=reason[:64],
                )
            )

    def publish_for_tier(
        self,
        behavior: str,
        tier: Tier,
        reason: str = "promotion",
        *,
        clean_below: bool | None = None,
        conn: Connection | None = None,
    ) -> PresetVersion:
        """Promotion to `tier`: the current version becomes the one published for it.

        After a Sunday promotion (`clean_below`, by default when `reason` is "promotion") it is
        also the version that ran clean at the tier below long enough to be promoted, so it is
        recorded there too: a later demotion back to that tier restores it.
        """
        if clean_below is None:
            clean_below = reason == "promotion"
        with self._tx(conn) as c:
            current = self._latest_row(c, behavior)
            if current is None:
                raise UnknownBehaviorError(
                    f"behavior {behavior!r} has no preset; register its Work Order first"
                )
            if clean_below and tier != Tier.A:
                self.publish(behavior, tier.down(), current.version, "clean at promotion", conn=c)
            self.publish(behavior, tier, current.version, reason, conn=c)
        return _row_to_version(current)

    def restore_for_demotion(
        self,
        behavior: str,
        tier: Tier,
        reason: str = "demotion",
        *,
        conn: Connection | None = None,
    ) -> PresetVersion:
        """Demotion to `tier`: bring back the last version that was clean there.

        That is the version last published for `tier` (or, if none, for the nearest tier below);
        if it differs from the current one it is restored as a new version. With no publication
        at or below `tier` the current version stays.
        """
        with self._tx(conn) as c:
            pubs = self.publications(behavior, conn=c)
            chosen: int | None = None
            for t in sorted((t for t in Tier if t.rank <= tier.rank), key=lambda t: -t.rank):
                at_tier = [p for p in pubs if p.tier == t.value]
                if at_tier:
                    chosen = at_tier[-1].version
                    break
            latest = self._latest_row(c, behavior)
            if latest is None:
                raise UnknownBehaviorError(
                    f"behavior {behavior!r} has no preset; register its Work Order first"
                )
            current = _row_to_version(latest)
            result = current
            if chosen is not None:
                clean = self.get(behavior, chosen, conn=c)
                if clean.content_hash != current.content_hash:
                    result = self.restore(behavior, chosen, conn=c)
            self.publish(behavior, tier, result.version, reason, conn=c)
        return result
