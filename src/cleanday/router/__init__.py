"""Model routing: one key and one versioned preset per behavior, guarded and budgeted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cleanday.router.types import Attempt, Completion

if TYPE_CHECKING:
    from cleanday.router.config import ModelInfo, RouterConfig, load_router_config
    from cleanday.router.core import Router, shared_client

# imported on first use: cleanday.budget and cleanday.presets import router.tables, and the
# router core imports them back
_LAZY = {
    "ModelInfo": "cleanday.router.config",
    "RouterConfig": "cleanday.router.config",
    "load_router_config": "cleanday.router.config",
    "Router": "cleanday.router.core",
    "shared_client": "cleanday.router.core",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = [
    "Attempt",
    "Completion",
    "ModelInfo",
    "Router",
    "RouterConfig",
    "load_router_config",
    "shared_client",
]
