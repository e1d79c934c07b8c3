"""The quick read path's own rules: which command lines it takes, the settings it reads as
`Settings` does, and that it imports nothing of the stack."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from cleanday.cli.quick import Environment, Read, parse
from cleanday.config import Settings


@pytest.mark.parametrize(
    ("argv", "read"),
    [
        (["ledger"], Read("ledger")),
        (["ledger", "--all", "--json"], Read("ledger", flags=frozenset({"--all", "--json"}))),
        (["show", "alpha"], Read("show", "alpha")),
        (["show", "--json", "alpha"], Read("show", "alpha", frozenset({"--json"}))),
        (["review", "--week", "2026-11-29"], Read("review", week=date(2026, 11, 29))),
        (["review", "--week=2026-11-29", "--json"],
         Read("review", flags=frozenset({"--json"}), week=date(2026, 11, 29))),
        (["batch", "list", "alpha", "--all"], Read("batch list", "alpha", frozenset({"--all"}))),
    ],
)  # fmt: skip
def test_the_read_verbs_it_takes(argv: list[str], read: Read) -> None:
    assert parse(argv) == read


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["ledger", "--help"],
        ["ledger", "verify"],  # a maintenance verb of the group
        ["show"],
        ["show", "alpha", "beta"],
        ["show", "alpha", "--all"],  # not an option of show: typer says so
        ["review", "--decide", "alpha=promote"],
        ["review", "--week", "2026-11-30"],  # a Monday: typer says what is wrong
        ["review", "--week"],
        ["batch", "approve", "alpha"],
        ["register", "behaviors/"],
    ],
)
def test_everything_else_goes_to_the_typer_command(argv: list[str]) -> None:
    assert parse(argv) is None


def _fields(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> tuple[Environment, Settings]:
    for name in ("CLEANDAY_DATA_DIR", "CLEANDAY_URL", "CLEANDAY_TIMEZONE", "CLEANDAY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Environment.read(), Settings()


@pytest.mark.parametrize(
    ("dotenv", "env"),
    [
        ("", {}),
        ("", {"CLEANDAY_DATA_DIR": "/srv/ledger", "CLEANDAY_URL": "http://ledger:8765"}),
        ("CLEANDAY_TIMEZONE=Europe/Paris\nexport CLEANDAY_TOKEN='from-dotenv'\n", {}),
        ('cleanday_url="http://a:1" # a comment\nCLEANDAY_DATA_DIR=/x\n',
         {"CLEANDAY_DATA_DIR": "/y"}),
    ],
)  # fmt: skip
def test_it_reads_the_settings_as_settings_does(
    dotenv: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if dotenv:
        (tmp_path / ".env").write_text(dotenv)
    quick, settings = _fields(monkeypatch, env)
    assert quick.data_dir == settings.data_dir
    assert quick.service_url == settings.service_url
    assert quick.timezone == settings.timezone
    assert quick.token == settings.token


def test_it_imports_nothing_of_the_stack() -> None:
    """What makes it quick: no typer, pydantic, SQLAlchemy or settings."""
    code = (
        "import sys; from cleanday.cli import quick; "
        "print(sorted(m for m in ('typer', 'pydantic', 'sqlalchemy', 'cleanday.config', "
        "'cleanday.domain') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
