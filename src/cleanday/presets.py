"""Preset versions: every change a new version, history kept, any version restorable, per tier."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from cleanday.budget import PresetReader, SqlAlchemyTx
from cleanday.domain import Tier
from cleanday.errors import ConfigError, UnknownBehaviorError
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


class PresetPublisher(Protocol):
    """Where published versions also go (OpenRouter's presets API when a management key is set)."""

    async def publish(self, version: PresetVersion, tier: Tier) -> int | None: ...


def _row_to_version(row: PresetVersionRow) -> PresetVersion:
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


class PresetStore:
    """Preset versions and their per-tier publications in the ledger database."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self._parsed: dict[tuple[str, int, str], PresetVersion] = {}

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def record(self, behavior: str, spec: PresetSpec, source: str = "registered") -> PresetVersion:
        """Store `spec` as a new version unless it equals the current one."""
        check_tightening(spec)
        digest = content_hash(spec)
        with Session(self.engine) as session:
            latest = self._latest_row(session, behavior)
            if latest is not None and latest.content_hash == digest and source == "registered":
                return _row_to_version(latest)
            return self._insert(session, behavior, spec, digest, source, latest)

    def _insert(
        self,
        session: Session,
        behavior: str,
        spec: PresetSpec,
        digest: str,
        source: str,
        latest: PresetVersionRow | None,
    ) -> PresetVersion:
        row = PresetVersionRow(
            behavior=behavior,
            version=(latest.version + 1) if latest else 1,
            content_hash=digest,
            content=spec.model_dump(mode="json"),
            source=source,
            created_at=self._now(),
        )
        session.add(row)
        session.commit()
        session.refresh(row)
        return _row_to_version(row)

    @staticmethod
    def _latest_row(session: Session, behavior: str) -> PresetVersionRow | None:
        return session.exec(
            select(PresetVersionRow)
            .where(PresetVersionRow.behavior == behavior)
            .order_by(col(PresetVersionRow.version).desc())
            .limit(1)
        ).first()

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

    def get(self, behavior: str, version: int) -> PresetVersion:
        with Session(self.engine) as session:
            row = session.exec(
                select(PresetVersionRow).where(
                    PresetVersionRow.behavior == behavior, PresetVersionRow.version == version
                )
            ).first()
            if row is None:
                count = session.exec(
                    select(func.count()).where(PresetVersionRow.behavior == behavior)
                ).one()
                raise UnknownBehaviorError(
                    f"behavior {behavior!r} has no preset version {version} "
                    f"(it has {count}); see `cleanday preset history {behavior}`"
                )
        return _row_to_version(row)

    def remote_version(self, behavior: str, version: int) -> int | None:
        """OpenRouter's version number for this version, once published there."""
        with Session(self.engine) as session:
            row = session.exec(
                select(PresetVersionRow).where(
                    PresetVersionRow.behavior == behavior, PresetVersionRow.version == version
                )
            ).first()
            return row.remote_version if row else None

    def set_remote_version(self, behavior: str, version: int, remote: int) -> None:
        with Session(self.engine) as session:
            row = session.exec(
                select(PresetVersionRow).where(
                    PresetVersionRow.behavior == behavior, PresetVersionRow.version == version
                )
            ).first()
            if row is not None:
                row.remote_version = remote
                session.add(row)
                session.commit()

    def history(self, behavior: str) -> list[PresetVersion]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(PresetVersionRow)
                .where(PresetVersionRow.behavior == behavior)
                .order_by(col(PresetVersionRow.version))
            ).all()
        return [_row_to_version(r) for r in rows]

    def restore(self, behavior: str, version: int) -> PresetVersion:
        """A new version whose content equals `version`'s; history is never rewritten."""
        old = self.get(behavior, version)
        with Session(self.engine) as session:
            latest = self._latest_row(session, behavior)
            return self._insert(
                session, behavior, old.spec, old.content_hash, f"restored v{version}", latest
            )

    def publications(self, behavior: str) -> list[PresetPublication]:
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(PresetPublication)
                    .where(PresetPublication.behavior == behavior)
                    .order_by(col(PresetPublication.id))
                ).all()
            )

    def _publish_row(self, behavior: str, tier: Tier, version: int, reason: str) -> None:
        with Session(self.engine) as session:
            session.add(
                PresetPublication(
                    behavior=behavior,
                    tier=tier.value,
                    version=version,
                    at=self._now(),
                    reason=reason,
                )
            )
            session.commit()

    def publish_for_tier(
        self, behavior: str, tier: Tier, reason: str = "promotion"
    ) -> PresetVersion:
        """Promotion to `tier`: the current version becomes the one published for it.

        It is also the version that ran clean at the tier below long enough to be promoted, so
        it is recorded there too: a later demotion back to that tier restores it.
        """
        current = self.current(behavior)
        if reason == "promotion" and tier != Tier.A:
            self._publish_row(behavior, tier.down(), current.version, "clean at promotion")
        self._publish_row(behavior, tier, current.version, reason)
        return current

    def restore_for_demotion(self, behavior: str, tier: Tier) -> PresetVersion:
        """Demotion to `tier`: bring back the last version that was clean there.

        That is the version last published for `tier` (or, if none, for the nearest tier below);
        if it differs from the current one it is restored as a new version. With no publication
        at or below `tier` the current version stays.
        """
        pubs = self.publications(behavior)
        chosen: int | None = None
        for t in sorted((t for t in Tier if t.rank <= tier.rank), key=lambda t: -t.rank):
            at_tier = [p for p in pubs if p.tier == t.value]
            if at_tier:
                chosen = at_tier[-1].version
                break
        current = self.current(behavior)
        if chosen is None:
            result = current
        else:
            clean = self.get(behavior, chosen)
            result = (
                current
                if clean.content_hash == current.content_hash
                else self.restore(behavior, chosen)
            )
        self._publish_row(behavior, tier, result.version, "demotion")
        return result
