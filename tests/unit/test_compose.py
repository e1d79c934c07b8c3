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
    assert services["ledger"]["environment"]["DATABASE_URL"].startswith("postgresql")
    # a worker with a fixed name or host port could not be scaled out
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]


def test_compose_image_installs_the_project_it_builds() -> None:
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "COPY src" in dockerfile
