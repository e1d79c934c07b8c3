"""Small helpers the built-in behaviors share: reading bundled files and model answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def bundled(path: str | Path) -> Path:
    """A path from a Work Order's config: absolute as given, else relative to `behaviors/`."""
    p = Path(path)
    return p if p.is_absolute() else HERE / p


def parse_json_answer(text: str) -> Any:
    """A model's JSON answer; tolerates a ```json fence around it. Raises ValueError."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    return json.loads(body)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
