"""The embedded stack (`cleanday up`): Temporal dev server, ledger service, local provider, worker.

Each part is its own child process; this one supervises them: it checks the ports first,
starts them in order, waits until each answers, prints where to look, and on Ctrl-C (or when a
part dies) stops them in reverse order. State lives in the data directory (the ledger's SQLite
file, Temporal's SQLite file, the sinks), so starting again resumes where it stopped.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cleanday.config import Settings
from cleanday.errors import ConfigError
from cleanday.runtime import stackfiles
from cleanday.runtime.binaries import temporal_binary

TOKEN_FILE = "operator-token"


@dataclass
class Part:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    url: str | None = None  # where it answers HTTP, recorded once it is ready


@dataclass
class Ports:
    temporal: int
    temporal_ui: int
    service: int
    provider: int
    host: str = "127.0.0.1"
    settings_names: dict[str, str] = field(
        default_factory=lambda: {
            "temporal": "TEMPORAL_ADDRESS",
            "temporal_ui": "TEMPORAL_UI_PORT",
            "service": "CLEANDAY_PORT",
            "provider": "CLEANDAY_LOCAL_PROVIDER_PORT",
        }
    )


def ports_of(settings: Settings) -> Ports:
    host, _, port = settings.temporal_address.rpartition(":")
    return Ports(
        temporal=int(port),
        temporal_ui=settings.temporal_ui_port,
        service=settings.service_port,
        provider=settings.local_provider_port,
        host=host or "127.0.0.1",
    )


def check_ports_free(ports: Ports) -> None:
    """Refuse to start when a port is taken, naming the port and the setting that moves it."""
    for role in ("temporal", "temporal_ui", "service", "provider"):
        port = getattr(ports, role)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((ports.host, port))
            except OSError:
                setting = ports.settings_names[role]
                raise ConfigError(
                    f"port {port} on {ports.host} ({role.replace('_', ' ')}) is already in use: "
                    f"stop what is using it, or set {setting} to a free port"
                ) from None


def ensure_token(settings: Settings) -> str:
    """The operator token: CLEANDAY_TOKEN if set, else one generated once in the data dir."""
    if settings.token:
        return settings.token
    path = settings.data_dir / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def _listening(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((host, port)) == 0

    return check


def _registered(url: str, settings: Settings) -> Callable[[], bool]:
    """Ready when the ledger lists every Work Order of the behaviors directory: the worker has
    registered them, so the first webhook or run of a built-in finds its behavior."""
    from cleanday.registration import not_a_work_order

    names: set[str] = set()
    for path in sorted(settings.behaviors_dir.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if not_a_work_order(text) is None:
            m = re.search(r"^name:\s*['\"]?([a-z][a-z0-9_]*)", text, re.M)
            if m:
                names.add(m.group(1))

    def check() -> bool:
        try:
            answer = httpx.get(url, timeout=2.0)
        except httpx.HTTPError:
            return False
        if answer.status_code != 200:
            return False
        return names <= {row.get("name") for row in answer.json()}

    return check


def _worker_ready(url: str, settings: Settings) -> Callable[[], bool]:
    """Ready when the stack's worker (the pid `up` wrote for it) polls its task queue (its own
    pid file says so) and has registered the behaviors directory's Work Orders: an empty
    behaviors directory is registered before the worker has even connected."""
    from cleanday.runtime.reload import ready_workers

    registered = _registered(url, settings)

    def check() -> bool:
        try:
            ours = int(stackfiles.pid_file(settings.data_dir, "worker").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return ours in ready_workers(settings) and registered()

    return check


def plan(settings: Settings) -> list[Part]:
    """The four parts, in start order."""
    p = ports_of(settings)
    data = settings.data_dir.resolve()
    py = sys.executable
    provider_url = f"http://{p.host}:{p.provider}"
    return [
        Part(
            "temporal",
            [
                temporal_binary("temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(data / "temporal.db"),
                "--ip",
                p.host,
                "--port",
                str(p.temporal),
                "--ui-port",
                str(p.temporal_ui),
                "--namespace",
                settings.temporal_namespace,
                "--log-level",
                "warn",
            ],
            _listening(p.host, p.temporal),
        ),
        Part(
            "local model provider",
            [py, "-m", "cleanday.runtime.embedded", "provider", p.host, str(p.provider)],
            _answers(f"{provider_url}/healthz"),
        ),
        Part(
            "ledger service",
            [py, "-m", "cleanday.runtime.embedded", "service"],
            _answers(f"http://{p.host}:{p.service}/api/v1/behaviors"),
            url=f"http://{p.host}:{p.service}",
        ),
        Part(
            "worker",
            [py, "-m", "cleanday.cli", "worker"],
            _worker_ready(f"http://{p.host}:{p.service}/api/v1/behaviors", settings),
        ),
    ]


def _stop(parts: list[Part], out: Callable[[str], None]) -> None:
    for part in reversed(parts):
        proc = part.process
        if proc is None or proc.poll() is not None:
            continue
        out(f"stopping {part.name}")
        proc.send_signal(signal.SIGTERM if part.name != "temporal" else signal.SIGINT)
    for part in reversed(parts):
        proc = part.process
        if proc is None:
            continue
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            out(f"{part.name} did not stop in 15 s; killing it")
            proc.kill()
            proc.wait()


def builtin_webhook_secrets(settings: Settings) -> dict[str, Path]:
    """The `env:` webhook secrets the behaviors directory's Work Orders name and the
    environment does not set: each generated once in the data directory, by variable."""
    import yaml

    from cleanday import bounded_yaml

    found: dict[str, Path] = {}
    for path in sorted(settings.behaviors_dir.glob("*.yaml")):
        try:
            raw = bounded_yaml.load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            continue  # registration says what is wrong with it
        trigger = raw.get("trigger") if isinstance(raw, dict) else None
        ref = trigger.get("secret_ref") if isinstance(trigger, dict) else None
        if not (isinstance(ref, str) and ref.startswith("env:")):
            continue
        variable = ref.removeprefix("env:")
        if not os.environ.get(variable):
            found[variable] = stackfiles.webhook_secret(settings.data_dir, variable)[1]
    return found


def up(settings: Settings, out: Callable[[str], None] = print) -> int:
    """Run the embedded stack until Ctrl-C, SIGTERM or SIGHUP (a closed terminal), each
    stopping the parts the same way; returns the exit code."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    leftovers = stackfiles.running(settings.data_dir)
    if leftovers:
        raise ConfigError(stackfiles.leftover_message(settings.data_dir, leftovers))
    check_ports_free(ports_of(settings))
    env = dict(os.environ)
    env["CLEANDAY_TOKEN"] = ensure_token(settings)
    hook_secrets = builtin_webhook_secrets(settings)
    for variable, path in hook_secrets.items():
        env[variable] = path.read_text().strip()
    env["CLEANDAY_DATA_DIR"] = str(settings.data_dir.resolve())
    env.setdefault(
        "CLEANDAY_LOCAL_PROVIDER_URL",
        f"http://{ports_of(settings).host}:{settings.local_provider_port}/v1",
    )
    logs = settings.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    parts = plan(settings)
    stopping = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    stackfiles.write_pid(settings.data_dir, stackfiles.SUPERVISOR, os.getpid())
    try:
        for part in parts:
            part.log = logs / f"{part.name.replace(' ', '-')}.log"
            out(f"starting {part.name} (log: {part.log})")
            with open(part.log, "ab") as log:
                part.process = subprocess.Popen(
                    part.argv,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches us; we stop the parts in order
                )
            stackfiles.write_pid(settings.data_dir, part.name, part.process.pid)
            deadline = time.monotonic() + 60
            while not part.ready():
                if stopping:
                    return 130
                if part.process.poll() is not None or time.monotonic() > deadline:
                    out(f"{part.name} did not start; see {part.log}")
                    return 1
                time.sleep(0.2)
            if part.url:
                stackfiles.write_url(settings.data_dir, part.name, part.url)
        p = ports_of(settings)
        out("")
        out(f"Pane of Glass:  http://{p.host}:{p.service}/")
        out(f"Temporal UI:    http://{p.host}:{p.temporal_ui}/")
        out(f"Operator token: in {settings.data_dir / TOKEN_FILE} (or CLEANDAY_TOKEN)")
        for variable, path in hook_secrets.items():
            out(f"Webhook secret: {variable} in {path}")
        if off := delivery_off(settings):
            out(
                f"Delivery off:   {off}: nothing is sent there; the outbox keeps every message "
                "until a token is set (`cleanday outbox`)"
            )
        out("Ctrl-C stops everything; `cleanday up` again resumes with all state.")
        while not stopping:
            for part in parts:
                assert part.process is not None
                if part.process.poll() is not None:
                    out(f"{part.name} exited with {part.process.returncode}; see {part.log}")
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        _stop(parts, out)
        for part in parts:
            stackfiles.remove_pid(settings.data_dir, part.name)
        stackfiles.remove_pid(settings.data_dir, stackfiles.SUPERVISOR)


def _serve_provider(host: str, port: int) -> None:
    from cleanday.localprovider import run_local_provider

    scripts = Settings().behaviors_dir / "local_scripts.yaml"
    run_local_provider(host, port, scripts_path=scripts if scripts.exists() else None)


def _serve_ledger() -> None:
    """The ledger service with the webhook route starting runs on Temporal."""
    import uvicorn

    from cleanday.runtime.starter import attach_runtime
    from cleanday.service.app import build_service, create_app

    settings = Settings()
    app = create_app(settings, build_service(settings))
    attach_runtime(app, settings)
    uvicorn.run(app, host=settings.service_host, port=settings.service_port, log_level="info")


if __name__ == "__main__":
    if sys.argv[1] == "provider":
        _serve_provider(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "service":
        _serve_ledger()


def delivery_off(settings: Settings) -> str:
    """The surfaces with no token, and the variable that turns each on ("" when none is off)."""
    off = [
        f"{name} (no {variable})"
        for name, variable, token in (
            ("Notion", "NOTION_TOKEN", settings.notion_token),
            ("Slack", "SLACK_BOT_TOKEN", settings.slack_token),
        )
        if not token
    ]
    return " and ".join(off)
