"""The one way cleanday connects to Temporal: the address and namespace of the settings, with
mTLS or an API key when they name one (a Temporal cluster with TLS, or Temporal Cloud), and the
worker's runtime with the SDK's own Prometheus exporter when a port is set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client, TLSConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from cleanday.config import Settings
from cleanday.errors import ConfigError
from cleanday.secrets import SecretResolver


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for the settings: a client certificate (mTLS) and its key together, a CA for a
    private cluster, or plain TLS (`TEMPORAL_TLS=true`, and always with an API key, as Temporal
    Cloud requires); False for a local dev server."""
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if (cert is None) != (key is None):
        raise ConfigError(
            "Temporal mTLS needs both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (the client "
            "certificate and its private key); set both, or neither"
        )
    ca = settings.temporal_tls_ca
    if cert is None and ca is None and settings.temporal_tls_server_name is None:
        return bool(settings.temporal_tls or settings.temporal_api_key)
    return TLSConfig(
        server_root_ca_cert=_read(ca, "TEMPORAL_TLS_CA"),
        client_cert=_read(cert, "TEMPORAL_TLS_CERT"),
        client_private_key=_read(key, "TEMPORAL_TLS_KEY"),
        domain=settings.temporal_tls_server_name,
    )


def api_key(settings: Settings) -> str | None:
    """The API key that TEMPORAL_API_KEY refers to (`env:NAME` or `file:/path`), or None."""
    ref = settings.temporal_api_key
    if not ref:
        return None
    resolver = SecretResolver(secret_dirs=settings.resolved_secret_dirs)
    return resolver.resolve(ref).reveal()


def connect_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `Client.connect` that the settings decide."""
    return {
        "namespace": settings.temporal_namespace,
        "tls": tls_config(settings),
        "api_key": api_key(settings),
    }


async def connect(settings: Settings, **kw: Any) -> Client:
    """A client of the configured Temporal; `kw` adds to `Client.connect`'s (a data
    converter, a runtime)."""
    return await Client.connect(settings.temporal_address, **connect_options(settings), **kw)


def worker_runtime(settings: Settings) -> Runtime | None:
    """A runtime exporting the SDK's worker metrics (task slots, poll latency, workflow and
    activity outcomes) for Prometheus at CLEANDAY_WORKER_METRICS_HOST:PORT; None when the port
    is 0 (the SDK's default runtime, no exporter)."""
    if not settings.worker_metrics_port:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    prometheus = PrometheusConfig(bind_address=address, durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


def _read(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: cannot read it ({exc.strerror})") from exc
