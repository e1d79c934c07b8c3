"""docker-compose.yml is checked against the published Compose schema (no Docker here)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "specs" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_validates_against_the_compose_spec(compose: dict) -> None:
    if not SPEC.exists():
        pytest.fail(f"compose schema not found at {SPEC}: ../shared/specs must sit beside the repo")
    schema = json.loads(SPEC.read_text())
    jsonschema.Draft7Validator(schema).validate(compose)


def test_compose_runs_temporal_on_postgres_ui_ledger_and_scalable_workers(compose: dict) -> None:
    services = compose["services"]
    assert {"postgresql", "temporal", "temporal-ui", "ledger", "worker"} <= services.keys()
    assert services["temporal"]["environment"]["DB"].startswith("postgres")
    # the ledger's DATABASE_URL (it holds a password) is in its env file
    example = (ROOT / "infra" / "env" / "cleanday.env.example").read_text()
    assert "DATABASE_URL=postgresql+psycopg://" in example
    assert "infra/env/cleanday.env" in services["ledger"]["env_file"]
    # a worker with a fixed name or host port could not be scaled out
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]


def test_compose_image_installs_the_project_it_builds() -> None:
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "COPY src" in dockerfile


# --- the scale-out stack's promises -------------------------------------------------------

SECRET_NAMES = ("PASSWORD", "PWD", "TOKEN", "API_KEY", "SECRET", "DATABASE_URL")


def test_every_service_has_a_health_check(compose: dict) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name


def test_every_image_is_pinned_to_a_version(compose: dict) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name}: no image (a built service names the tag it builds)"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and any(c.isdigit() for c in tag), (name, image)


def test_secrets_come_from_env_files_never_inline(compose: dict) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        pairs = env.items() if isinstance(env, dict) else (e.partition("=")[::2] for e in env)
        for key, _ in pairs:
            assert not any(s in key.upper() for s in SECRET_NAMES), (name, key)
        for path in service.get("env_file") or []:
            path = path if isinstance(path, str) else path["path"]
            assert (ROOT / f"{path}.example").exists(), f"{name}: {path} has no example"
    ignored = (ROOT / ".gitignore").read_text()
    assert "infra/env/*.env" in ignored  # the real env files are never committed


def test_migrations_run_once_before_the_service_and_workers_scale(compose: dict) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["cleanday", "migrate"]
    assert services["migrate"]["restart"] == "no"
    ledger_deps = services["ledger"]["depends_on"]
    assert ledger_deps["migrate"]["condition"] == "service_completed_successfully"
    worker = services["worker"]
    assert worker["environment"]["CLEANDAY_WORKER_METRICS_PORT"]
    assert "9464" in str(worker["healthcheck"]["test"])
    # Temporal keeps its state in its own PostgreSQL, with the dynamic config mounted
    temporal = services["temporal"]
    assert temporal["environment"]["POSTGRES_SEEDS"] in services
    mounted = [v.split(":")[0] for v in temporal["volumes"]]
    assert all((ROOT / m).exists() for m in mounted)
    assert yaml.safe_load((ROOT / "infra" / "temporal" / "dynamicconfig.yaml").read_text())


def test_the_image_installs_from_the_lock_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--no-deps ." in dockerfile
    final = dockerfile.rsplit("FROM ", 1)[1]
    user = next(line for line in final.splitlines() if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    for line in dockerfile.splitlines():
        if line.startswith("FROM "):
            tag = line.split()[1].rpartition(":")[2]
            assert tag != "latest" and any(c.isdigit() for c in tag), line


def test_the_lock_pins_every_dependency_by_hash() -> None:
    import tomllib

    from packaging.requirements import Requirement

    lock = (ROOT / "requirements.lock").read_text()
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in lock.splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        name = Requirement(dep).name.lower().replace("_", "-")
        assert name in pinned, f"{name} is in pyproject.toml but not in requirements.lock"
        assert any(c in dep for c in "<>="), f"pyproject keeps ranges: {dep}"
    blocks = [b for b in lock.split("\n") if "==" in b and not b.startswith((" ", "#"))]
    assert blocks and all(b.rstrip().endswith("\\") for b in blocks)  # each has --hash lines


def test_every_cleanday_instance_mounts_the_same_data_dir(compose: dict) -> None:
    for name in ("migrate", "ledger", "worker"):
        assert "cleanday-data:/home/cleanday/data" in compose["services"][name]["volumes"], name
    assert "cleanday-data" in compose["volumes"]
