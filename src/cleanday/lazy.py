"""Modules imported on first use: a process that never calls into one never pays its import.

The ledger facade (`cleanday.ledger.service`) reaches every use case; the CLI's read verbs use
only the reads, so the facade names the others through `lazy_module` and each is imported when
one of its functions is first called.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """The module `name`, executed when an attribute of it is first read (the same module
    object as `import name` gives, then or later)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module
