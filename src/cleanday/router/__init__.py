"""Model routing: one key and one versioned preset per behavior, guarded and budgeted."""

from cleanday.router.config import ModelInfo, RouterConfig, load_router_config
from cleanday.router.core import Router, shared_client
from cleanday.router.types import Attempt, Completion

__all__ = [
    "Attempt",
    "Completion",
    "ModelInfo",
    "Router",
    "RouterConfig",
    "load_router_config",
    "shared_client",
]
