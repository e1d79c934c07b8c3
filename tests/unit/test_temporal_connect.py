"""Connecting to a Temporal cluster with mTLS, or to Temporal Cloud with an API key."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import TLSConfig

from cleanday.config import Settings
from cleanday.errors import ConfigError
from cleanday.runtime.connect import api_key, connect_options, tls_config


def test_the_local_dev_server_needs_no_tls() -> None:
    assert connect_options(Settings()) == {"namespace": "default", "tls": False, "api_key": None}


def test_an_api_key_is_a_reference_and_turns_tls_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_KEY", "cloud-key-canary-91")
    s = Settings(TEMPORAL_API_KEY="env:CLOUD_KEY", TEMPORAL_NAMESPACE="acme.a1b2c")
    options = connect_options(s)
    assert options == {"namespace": "acme.a1b2c", "tls": True, "api_key": "cloud-key-canary-91"}


def test_an_unset_api_key_reference_names_the_variable() -> None:
    with pytest.raises(Exception, match="NOT_SET_ANYWHERE"):
        api_key(Settings(TEMPORAL_API_KEY="env:NOT_SET_ANYWHERE"))


def test_mtls_reads_the_certificate_key_and_ca(tmp_path: Path) -> None:
    for name in ("client.pem", "client.key", "ca.pem"):
        (tmp_path / name).write_bytes(f"--- {name} ---".encode())
    tls = tls_config(
        Settings(
            TEMPORAL_TLS_CERT=tmp_path / "client.pem",
            TEMPORAL_TLS_KEY=tmp_path / "client.key",
            TEMPORAL_TLS_CA=tmp_path / "ca.pem",
            TEMPORAL_TLS_SERVER_NAME="temporal.internal",
        )
    )
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"--- client.pem ---"
    assert tls.client_private_key == b"--- client.key ---"
    assert tls.server_root_ca_cert == b"--- ca.pem ---"
    assert tls.domain == "temporal.internal"


def test_a_certificate_without_its_key_says_both_are_needed(tmp_path: Path) -> None:
    (tmp_path / "client.pem").write_text("x")
    with pytest.raises(ConfigError, match="TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"):
        tls_config(Settings(TEMPORAL_TLS_CERT=tmp_path / "client.pem"))


def test_an_unreadable_certificate_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"TEMPORAL_TLS_CERT=.*cannot read"):
        tls_config(
            Settings(TEMPORAL_TLS_CERT=tmp_path / "absent.pem", TEMPORAL_TLS_KEY=tmp_path / "k")
        )
