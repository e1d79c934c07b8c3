"""`cleanday new NAME`: the files it writes register, and their test passes, as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cleanday.cli import app


def test_new_scaffolds_a_behavior_whose_test_passes_and_which_registers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(app, ["new", "weather_note"])
    assert made.exit_code == 0, made.output
    for path in ("behaviors/weather_note.yaml", "behaviors/weather_note.py",
                 "tests/test_weather_note.py", "behaviors/__init__.py"):  # fmt: skip
        assert (tmp_path / path).is_file(), path
    assert (
        "entry: behaviors.weather_note:run"
        in (tmp_path / "behaviors/weather_note.yaml").read_text()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANDAY_")}
    env.pop("DATABASE_URL", None)
    tested = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_weather_note.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout
    env.update(CLEANDAY_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(tmp_path))
    registered = subprocess.run(
        [sys.executable, "-m", "cleanday.cli", "register", "behaviors/"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert registered.returncode == 0, registered.stderr
    assert "weather_note: registered at tier A" in registered.stdout
    linted = subprocess.run(
        [
            str(Path(sys.executable).parent / "ruff"),
            "check",
            "--no-cache",
            "--isolated",
            "--line-length",
            "100",
            ".",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout


def test_new_refuses_a_bad_name_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["new", "Weather"]).exit_code == 2
    assert runner.invoke(app, ["new", "weather_note"]).exit_code == 0
    (tmp_path / "behaviors/weather_note.py").write_text("# mine\n")
    again = runner.invoke(app, ["new", "weather_note"])
    assert again.exit_code == 1
    assert "already exist" in again.output
    assert (tmp_path / "behaviors/weather_note.py").read_text() == "# mine\n"
