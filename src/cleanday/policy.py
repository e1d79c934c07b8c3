"""Reading a ladder Policy from YAML (for `ledger replay --policy FILE` and the ledger's own)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from cleanday.domain import IdlePolicy, Policy
from cleanday.errors import ConfigError

_KEYS = (
    "timezone",
    "clean_day_threshold",
    "wings_threshold",
    "idle",
    "quarantine_failures",
    "quarantine_window_days",
    "counted_anomalies",
    "idle_by_behavior",
)
_IDLE_CHOICES = ", ".join(p.value for p in IdlePolicy)


def load_policy(path: str | Path) -> Policy:
    """The Policy in a YAML file; keys left out keep their defaults.

    Raises ConfigError naming the file, the field and what is allowed.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"policy {source}: cannot read the file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"policy {source}: not valid YAML ({exc})") from exc
    if data is None:
        data = {}
    return parse_policy(data, source)


def parse_policy(data: object, source: str = "<policy>") -> Policy:
    """A Policy from an already parsed mapping; `source` names it in error messages."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"policy {source}: expected a mapping of {', '.join(_KEYS)}")
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise ConfigError(
            f"policy {source}: {unknown[0]}: unknown field; allowed fields are {', '.join(_KEYS)}"
        )
    defaults = Policy()

    def error(name: str, problem: str) -> ConfigError:
        return ConfigError(f"policy {source}: {name}: {problem}")

    def positive_int(name: str, default: int) -> int:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise error(name, f"must be a whole number of at least 1, got {value!r}")
        return value

    def idle_policy(name: str, value: Any) -> IdlePolicy:
        try:
            return IdlePolicy(value)
        except ValueError:
            raise error(name, f"must be one of {_IDLE_CHOICES}, got {value!r}") from None

    timezone = data.get("timezone", defaults.timezone)
    if not isinstance(timezone, str) or not timezone:
        raise error("timezone", f"must be an IANA time zone name, got {timezone!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise error(
            "timezone",
            f"unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin or UTC",
        ) from None

    counted = data.get("counted_anomalies")
    counted_anomalies: frozenset[str] | None = None
    if counted is not None:
        if not isinstance(counted, list) or not all(isinstance(n, str) for n in counted):
            raise error(
                "counted_anomalies",
                "must be a list of anomaly names (omit it to count every anomaly)",
            )
        counted_anomalies = frozenset(counted)

    by_behavior = data.get("idle_by_behavior") or {}
    if not isinstance(by_behavior, Mapping):
        raise error("idle_by_behavior", f"must map behavior names to {_IDLE_CHOICES}")
    idle_by_behavior = {
        str(name): idle_policy(f"idle_by_behavior.{name}", value)
        for name, value in by_behavior.items()
    }

    return Policy(
        timezone=timezone,
        clean_day_threshold=positive_int("clean_day_threshold", defaults.clean_day_threshold),
        wings_threshold=positive_int("wings_threshold", defaults.wings_threshold),
        idle=idle_policy("idle", data.get("idle", defaults.idle.value)),
        quarantine_failures=positive_int("quarantine_failures", defaults.quarantine_failures),
        quarantine_window_days=positive_int(
            "quarantine_window_days", defaults.quarantine_window_days
        ),
        counted_anomalies=counted_anomalies,
        idle_by_behavior=idle_by_behavior,
    )
