"""The shape of the source tree: one error hierarchy."""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import cleanday.errors

ROOT = Path(__file__).resolve().parents[2]
CODE = [ROOT / "src" / "cleanday", ROOT / "workflows", ROOT / "behaviors"]

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
