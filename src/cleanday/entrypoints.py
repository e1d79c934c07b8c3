"""Where a Work Order's `module:function` entry points may live, found without running them.

A step or custom-gate entry point must resolve inside the operator's behaviors directory
(CLEANDAY_BEHAVIORS_DIR), the `behaviors` package installed with cleanday, or a module the
operator allows by name (CLEANDAY_STEP_MODULES, comma-separated names; a name allows its
submodules). So `os:system`, `builtins:exec`, `shutil:rmtree` or `this:s` are refused.

`locate` finds an entry's source file from the import system's metadata alone: it looks the
top-level package up with `importlib.util.find_spec`, which executes nothing, and walks the
submodule path itself rather than asking `find_spec` for a dotted name (which would import
the parent packages). So registration, in the service process, never runs step code.

A worker `load`s an entry on first use: a module in the behaviors directory from its file
(so a `pip install`ed cleanday runs the operator's own step code from their own folder), any
other from the installed packages. A module already loaded is not loaded again: changed step
code needs a worker reload (SIGHUP to `cleanday worker`, or `cleanday reload`).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from cleanday.errors import ConfigError

PACKAGE = "behaviors"  # the built-in behaviors' package; also how entries name the directory's


@dataclass(frozen=True)
class EntryRoots:
    """Where entry points may resolve."""

    behaviors_dir: Path | None
    allowed: tuple[str, ...] = ()  # module names (and their submodules) allowed anywhere

    @classmethod
    def from_settings(cls, behaviors_dir: Path | None, step_modules: str | None) -> EntryRoots:
        names = tuple(m.strip() for m in (step_modules or "").split(",") if m.strip())
        return cls(behaviors_dir.resolve() if behaviors_dir else None, names)

    def allows(self, module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in self.allowed)


@lru_cache(maxsize=1)
def default_roots() -> EntryRoots:
    """The roots of this process's settings (CLEANDAY_BEHAVIORS_DIR, CLEANDAY_STEP_MODULES)."""
    from cleanday.config import get_settings

    settings = get_settings()
    return EntryRoots.from_settings(settings.behaviors_dir, settings.step_modules)


def split(entry: str) -> tuple[str, str]:
    module, sep, attr = entry.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"entry point {entry!r} must be 'module:function'")
    return module, attr


def in_behaviors_dir(module: str, roots: EntryRoots) -> Path | None:
    """The file of `module` in the behaviors directory (`behaviors.x` or `x` is `<dir>/x.py`
    or `<dir>/x/__init__.py`), or None."""
    if roots.behaviors_dir is None:
        return None
    parts = module.split(".")
    if parts[0] == PACKAGE and len(parts) > 1:
        parts = parts[1:]
    base = roots.behaviors_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _source_file(module: str) -> Path | None:
    """The source file of installed `module`, found without importing anything: the top level
    by `find_spec` (which runs no code for a top-level name), the rest by walking its path."""
    parts = module.split(".")
    spec = importlib.util.find_spec(parts[0])
    if spec is None:
        return None
    if len(parts) == 1:
        return Path(spec.origin) if spec.origin and spec.has_location else None
    if not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        base = Path(root).joinpath(*parts[1:])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def locate(entry: str, roots: EntryRoots | None = None) -> str:
    """Where `entry` resolves, without running it: "behaviors directory <file>", "package
    <file>" or "allowed module <name>". Raises ConfigError, saying what to do, when it is
    outside all of them, not found, or (for a file) does not define the function."""
    roots = roots or default_roots()
    module, attr = split(entry)
    found = in_behaviors_dir(module, roots)
    if found is not None:
        _check_defines(entry, found, attr)
        return f"behaviors directory {found}"
    if module.split(".")[0] == PACKAGE and (found := _source_file(module)) is not None:
        _check_defines(entry, found, attr)
        return f"package {found}"
    if roots.allows(module):
        found = _source_file(module)
        if found is None:
            raise ConfigError(f"entry point {entry!r}: no module {module!r} is installed")
        if found.suffix == ".py":
            _check_defines(entry, found, attr)
        return f"allowed module {module}"
    where = str(roots.behaviors_dir) if roots.behaviors_dir else "CLEANDAY_BEHAVIORS_DIR"
    raise ConfigError(
        f"entry point {entry!r}: module {module!r} is not in the behaviors directory "
        f"({where}) nor in the built-in behaviors package; put the step code there (e.g. "
        f"{where}/my_step.py, entry 'behaviors.my_step:run'), or allow an installed module "
        "by name in CLEANDAY_STEP_MODULES"
    )


def source_of(entry: str, roots: EntryRoots | None = None) -> Path | None:
    """The source file `entry` would be loaded from, found without running it (None for a
    module with no Python source, or one not found)."""
    roots = roots or default_roots()
    module, _ = split(entry)
    found = in_behaviors_dir(module, roots)
    return found if found is not None else _source_file(module)


def _check_defines(entry: str, path: Path, attr: str) -> None:
    """The file defines `attr`'s first name at top level (read, never run)."""
    name = attr.split(".")[0]
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(f"entry point {entry!r}: cannot read {path}: {exc}") from None
    if name not in _top_level_names(tree):
        raise ConfigError(
            f"entry point {entry!r}: {path} defines no function {name!r} at top level"
        )


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def load(entry: str, roots: EntryRoots | None = None) -> Any:
    """The object `entry` names, its module imported on first use (see the module docstring).
    Raises ConfigError when it is outside the roots, cannot be imported, or lacks the name."""
    roots = roots or default_roots()
    module_name, attr = split(entry)
    locate(entry, roots)
    try:
        module = _import(module_name, roots)
    except ImportError as exc:
        raise ConfigError(f"entry point {entry!r}: cannot import {module_name}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(f"entry point {entry!r}: {module_name} has no {attr}") from exc
    return target


def _import(name: str, roots: EntryRoots) -> ModuleType:
    path = in_behaviors_dir(name, roots)
    loaded = sys.modules.get(name)
    if path is None:
        if loaded is None:
            importlib.invalidate_caches()  # a module written since the worker started
        return importlib.import_module(name)
    if loaded is not None and _same_file(getattr(loaded, "__file__", None), path):
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _same_file(a: str | None, b: Path) -> bool:
    return a is not None and os.path.realpath(a) == os.path.realpath(b)
