"""Secret references: one resolver for model keys, webhook secrets and registration's check."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import yaml

import cleanday.secrets as secrets_module
from cleanday.errors import SecretResolutionError, WorkOrderError
from cleanday.registration import parse_work_order
from cleanday.secrets import (
    SecretResolver,
    known_schemes,
    register_scheme,
    unregister_scheme,
)

VAULT = {"hooks/logger": "vault-canary-hook-8e1f", "keys/tagger": "vault-canary-key-51ab"}


def read_vault(path: str) -> str:
    """A stand-in secret manager: the plug-in function an entry point names."""
    return VAULT.get(path, "")


def _work_order(**over: Any) -> str:
    data: dict[str, Any] = {
        "name": "tagger",
        "description": "tags things",
        "trigger": {"type": "interval", "every_seconds": 60},
        "reports": "the tags it set",
        "key": {"ref": "env:KEY_TAGGER", "cap_usd": 1},
        "preset": {"name": "tagger", "model": "local/echo"},
        "entry": "tests.unit.test_secrets:read_vault",
    }
    return yaml.safe_dump(data | over)


@pytest.fixture
def vault() -> Iterator[None]:
    register_scheme("vault", read_vault)
    yield
    unregister_scheme("vault")


def test_an_unknown_secret_scheme_is_refused_at_registration_with_the_schemes_allowed() -> None:
    key = {"ref": "vault:foo", "cap_usd": 1}
    with pytest.raises(WorkOrderError) as err:
        parse_work_order(_work_order(key=key), "behaviors/x.yaml")
    assert err.value.field == "key.ref"
    assert str(err.value) == (
        "behaviors/x.yaml: key.ref: 'vault:foo' uses an unknown secret scheme 'vault'; "
        "use one of env:, file:"
    )


def test_an_unknown_scheme_in_a_webhook_secret_ref_is_refused_too() -> None:
    trigger = {"type": "webhook", "secret_ref": "aws-sm:hooks/tagger"}
    with pytest.raises(WorkOrderError, match="unknown secret scheme 'aws-sm'") as err:
        parse_work_order(_work_order(trigger=trigger), "behaviors/x.yaml")
    assert err.value.field == "trigger.secret_ref"


def test_a_plugged_in_scheme_is_accepted_at_registration_and_resolved(vault: None) -> None:
    key = {"ref": "vault:keys/tagger", "cap_usd": 1}
    assert parse_work_order(_work_order(key=key)).key.ref == "vault:keys/tagger"
    assert "vault" in known_schemes()
    resolver = SecretResolver(env={})
    assert resolver.resolve("vault:keys/tagger").reveal() == "vault-canary-key-51ab"
    assert resolver.redactor("x vault-canary-key-51ab y") == "x [redacted] y"
    with pytest.raises(SecretResolutionError, match="vault:keys/nope: resolved to an empty"):
        resolver.resolve("vault:keys/nope")
    with pytest.raises(WorkOrderError, match=r"use one of env:, file:, vault:"):
        parse_work_order(_work_order(key={"ref": "vualt:keys/tagger", "cap_usd": 1}))


def test_an_installed_entry_point_plugs_a_scheme_into_every_resolver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = [
        EntryPoint("vault", "tests.unit.test_secrets:read_vault", secrets_module.ENTRY_POINT_GROUP)
    ]

    def entry_points(*, group: str) -> list[EntryPoint]:
        return installed if group == secrets_module.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(secrets_module, "entry_points", entry_points)
    monkeypatch.setattr(secrets_module, "_entry_points_loaded", False)
    monkeypatch.setattr(secrets_module, "_plugged", {})
    assert known_schemes() == ("env", "file", "vault")
    assert SecretResolver().resolve("vault:hooks/logger").reveal() == "vault-canary-hook-8e1f"
    trigger = {"type": "webhook", "secret_ref": "vault:hooks/logger"}
    parse_work_order(_work_order(trigger=trigger))


def test_a_bare_environment_variable_name_resolves_like_env(tmp_path: Path) -> None:
    resolver = SecretResolver(env={"KEY_TAGGER": " env-canary-3c0d\n"}, secret_dirs=[tmp_path])
    assert resolver.resolve("KEY_TAGGER").reveal() == "env-canary-3c0d"
    assert resolver.resolve("env:KEY_TAGGER").reveal() == "env-canary-3c0d"
    path = tmp_path / "key"
    path.write_text("file-canary-77aa\n")
    assert resolver.resolve(f"file:{path}").reveal() == "file-canary-77aa"
    with pytest.raises(SecretResolutionError, match="is not a secret reference"):
        resolver.resolve("not a reference")


def test_the_standard_library_secrets_module_is_not_shadowed() -> None:
    # cleanday.secrets is imported absolutely everywhere, so `import secrets` stays stdlib's
    import cleanday.service.deps as deps

    assert deps.secrets.__name__ == "secrets"
    assert callable(deps.secrets.compare_digest)


# --- file: references stay inside the secret directories --------------------------------


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "tagger.key").write_text("file-canary-inside-19b2\n")
    (tmp_path / "outside.key").write_text("file-canary-outside-4e0c\n")
    return d


def test_a_file_outside_the_secret_directories_is_refused_at_resolution(secret_dir: Path) -> None:
    """Today `file:/etc/hostname` was read and sent to the provider as the bearer key."""
    resolver = SecretResolver(env={}, secret_dirs=[secret_dir])
    assert resolver.resolve(f"file:{secret_dir / 'tagger.key'}").reveal() == (
        "file-canary-inside-19b2"
    )
    for ref in ("file:/etc/hostname", f"file:{secret_dir.parent / 'outside.key'}"):
        with pytest.raises(SecretResolutionError, match="outside the secret directories") as err:
            resolver.resolve(ref)
        assert "CLEANDAY_SECRET_DIRS" in str(err.value)
        assert "canary" not in str(err.value)


def test_dot_dot_in_a_secret_file_path_is_refused(secret_dir: Path) -> None:
    resolver = SecretResolver(env={}, secret_dirs=[secret_dir])
    with pytest.raises(SecretResolutionError, match=r"'\.\.' is not allowed"):
        resolver.resolve(f"file:{secret_dir}/../outside.key")
    with pytest.raises(SecretResolutionError, match=r"'\.\.' is not allowed"):
        resolver.resolve(f"file:{secret_dir}/../secrets/tagger.key")


def test_a_symlink_out_of_the_secret_directories_is_refused(secret_dir: Path) -> None:
    (secret_dir / "escape.key").symlink_to(secret_dir.parent / "outside.key")
    (secret_dir / "alias.key").symlink_to(secret_dir / "tagger.key")
    resolver = SecretResolver(env={}, secret_dirs=[secret_dir])
    with pytest.raises(SecretResolutionError, match="outside the secret directories"):
        resolver.resolve(f"file:{secret_dir / 'escape.key'}")
    assert resolver.resolve(f"file:{secret_dir / 'alias.key'}").reveal() == (
        "file-canary-inside-19b2"
    )


def test_the_secret_directories_default_to_the_data_dirs_and_are_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANDAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLEANDAY_SECRET_DIRS", raising=False)
    assert SecretResolver(env={}).secret_dirs == (
        tmp_path / "data" / "secrets",
        tmp_path / "data" / "keys",
    )
    monkeypatch.setenv("CLEANDAY_SECRET_DIRS", f"/run/secrets:{tmp_path / 'more'}")
    assert SecretResolver(env={}).secret_dirs == (
        Path("/run/secrets"),
        tmp_path / "more",
        tmp_path / "data" / "keys",
    )


def test_registration_refuses_a_file_reference_outside_the_secret_directories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # registration checks the path as written: the file need not exist where it registers
    monkeypatch.setenv("CLEANDAY_SECRET_DIRS", "/srv/keys")
    key = {"ref": "file:/etc/hostname", "cap_usd": 1}
    with pytest.raises(WorkOrderError, match="outside the secret directories") as err:
        parse_work_order(_work_order(key=key), "behaviors/tagger.yaml")
    assert err.value.path == "behaviors/tagger.yaml" and err.value.field == "key.ref"
    assert "CLEANDAY_SECRET_DIRS" in str(err.value)
    trigger = {"type": "webhook", "secret_ref": "file:/srv/keys/../hostname"}
    with pytest.raises(WorkOrderError, match=r"'\.\.' is not allowed") as err:
        parse_work_order(_work_order(trigger=trigger), "behaviors/tagger.yaml")
    assert err.value.field == "trigger.secret_ref"
    key = {"ref": "file:/srv/keys/tagger", "cap_usd": 1}
    assert parse_work_order(_work_order(key=key)).key.ref == "file:/srv/keys/tagger"
