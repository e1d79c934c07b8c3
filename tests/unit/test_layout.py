"""The shape of the source tree: one error hierarchy, and no import circle between modules."""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import cleanday.errors

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
CODE = [SRC / "cleanday", ROOT / "workflows", ROOT / "behaviors"]

ERROR_BASES = {
    name
    for name, value in [*vars(builtins).items(), *vars(cleanday.errors).items()]
    if inspect.isclass(value) and issubclass(value, BaseException)
}


def _python_files() -> list[Path]:
    return sorted(p for top in CODE for p in top.rglob("*.py"))


def test_every_error_class_is_defined_in_cleanday_errors() -> None:
    elsewhere = []
    for path in _python_files():
        if path == Path(cleanday.errors.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {getattr(b, "id", None) or getattr(b, "attr", "") for b in node.bases}
            if bases & ERROR_BASES:
                elsewhere.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not elsewhere, f"define these in cleanday.errors: {elsewhere}"


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "cleanday").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The cleanday modules `module` imports anywhere in its text (inside functions too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    named: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            named += [base, *(f"{base}.{a.name}" for a in node.names)]
    out = set()
    for name in named:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        # a package re-exporting its own modules, or a module using its package's face, is
        # the package's own business, not a circle between modules
        if (
            not name
            or name == module
            or name.startswith(module + ".")
            or (module.startswith(name + ".") and modules[name].name == "__init__.py")
        ):
            continue
        out.add(name)
    return out


def test_no_two_modules_import_each_other_even_through_others() -> None:
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    circles = []
    for start in sorted(graph):
        # depth-first from `start`, looking for a way back to it
        stack, seen = [(start, [start])], set()
        while stack:
            at, trail = stack.pop()
            for nxt in graph[at]:
                if nxt == start:
                    circles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        if circles:
            break
    assert not circles, f"import circle (move the shared piece down a floor): {circles[0]}"
