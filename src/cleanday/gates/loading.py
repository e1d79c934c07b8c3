"""Import a `module:attribute` entry point, as Work Orders name step code and custom gates."""

from __future__ import annotations

import importlib
from typing import Any

from cleanday.errors import ConfigError


def load_entry(entry: str) -> Any:
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"entry point {entry!r} must be 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"entry point {entry!r}: cannot import {module_name}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(f"entry point {entry!r}: {module_name} has no {attr}") from exc
    return target
