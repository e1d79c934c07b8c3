"""Import a `module:attribute` entry point, as Work Orders name step code, custom gates and
schema models: contained and loaded by `cleanday.entrypoints`."""

from __future__ import annotations

from typing import Any

from cleanday import entrypoints


def load_entry(entry: str) -> Any:
    """The object `entry` names; ConfigError when it is outside the allowed roots or cannot be
    loaded (see cleanday.entrypoints)."""
    return entrypoints.load(entry)
