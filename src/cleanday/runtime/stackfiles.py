"""What the embedded stack leaves in its data directory for the verbs that follow it: pid files
(`cleanday down`, `cleanday status`, the leftover check of the next `cleanday up`), the parts'
logs (`cleanday logs`), and the secrets it generates for the built-ins.

Layout under the data directory: `run/<part>.pid` (one line: the pid), `run/<part>.url` for a
part that answers HTTP (once it does: the read verbs ask the ledger service there, see
`cleanday.cli.quick`), `run/up.pid` for the supervisor itself, `logs/<part>.log`,
`webhook-secrets/<VARIABLE>`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERVISOR = "up"

# `cleanday logs NAME` -> the log file of that part
LOG_NAMES = {
    "temporal": "temporal",
    "provider": "local-model-provider",
    "service": "ledger-service",
    "worker": "worker",
}


def slug(part: str) -> str:
    """A part's file name: 'ledger service' -> 'ledger-service'."""
    return part.replace(" ", "-")


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def logs_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


def pid_file(data_dir: Path, part: str) -> Path:
    return run_dir(data_dir) / f"{slug(part)}.pid"


def write_pid(data_dir: Path, part: str, pid: int) -> None:
    path = pid_file(data_dir, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def remove_pid(data_dir: Path, part: str) -> None:
    """Forget a part that stopped: its pid file, and its address if it had one."""
    pid_file(data_dir, part).unlink(missing_ok=True)
    url_file(data_dir, part).unlink(missing_ok=True)


def url_file(data_dir: Path, part: str) -> Path:
    return run_dir(data_dir) / f"{slug(part)}.url"


def write_url(data_dir: Path, part: str, url: str) -> None:
    url_file(data_dir, part).write_text(f"{url}\n")


def url_of(data_dir: Path, part: str) -> str | None:
    """Where a running part of the stack answers: its recorded address while the process its
    pid file names is alive, else None."""
    try:
        url = url_file(data_dir, part).read_text().strip()
        pid = int(pid_file(data_dir, part).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    command = _command(pid)
    return url if url and command is not None and _ours(command) else None


@dataclass(frozen=True)
class Running:
    """A process a pid file names that is still alive."""

    part: str
    pid: int
    command: str


def _command(pid: int) -> str | None:
    """The command line of a live process, or None when there is none of that pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"  # no /proc (macOS): alive is all we know
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def _ours(command: str) -> bool:
    """Whether a command line is one of the stack's parts (a pid reused by an unrelated
    process since is not)."""
    return command == "?" or "cleanday" in command or "temporal" in command


def running(data_dir: Path) -> list[Running]:
    """The processes of a stack started from `data_dir` that are still alive, supervisor
    first; pid files of processes that are gone are removed."""
    found: list[Running] = []
    directory = run_dir(data_dir)
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.pid"), key=lambda p: p.stem != SUPERVISOR):
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            path.unlink(missing_ok=True)
            continue
        command = _command(pid)
        if command is None or not _ours(command):
            path.unlink(missing_ok=True)
            continue
        found.append(Running(path.stem.replace("-", " "), pid, command))
    return found


def describe(processes: Iterable[Running]) -> str:
    return ", ".join(f"{p.part} (pid {p.pid})" for p in processes)


def leftover_message(data_dir: Path, processes: list[Running]) -> str:
    pids = " ".join(str(p.pid) for p in processes)
    return (
        f"a cleanday stack from an earlier run is still running from {data_dir}: "
        f"{describe(processes)}; stop it with `cleanday down` (or `kill {pids}`), "
        "then start again"
    )


def stop(data_dir: Path, timeout: float = 30.0) -> list[Running]:
    """Stop the stack started from `data_dir`: SIGTERM to its supervisor (which stops the
    parts in order), then to any part still alive, SIGKILL past `timeout`. Returns what was
    running."""
    before = running(data_dir)
    supervisor = [p for p in before if p.part == SUPERVISOR]
    for p in supervisor or before:
        _signal(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(data_dir) and time.monotonic() < deadline:
        if supervisor and not any(r.part == SUPERVISOR for r in running(data_dir)):
            for p in running(data_dir):  # the supervisor is gone: stop what it left
                _signal(p.pid, signal.SIGTERM)
            supervisor = []
        time.sleep(0.2)
    for p in running(data_dir):
        _signal(p.pid, signal.SIGKILL)
        remove_pid(data_dir, p.part)
    return before


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def webhook_secret(data_dir: Path, variable: str) -> tuple[str, Path]:
    """The secret a built-in webhook behavior's `env:VARIABLE` names, generated once into the
    data directory (mode 0600) as the operator token is; returns it and its file."""
    path = data_dir / "webhook-secrets" / variable
    if path.exists():
        return path.read_text().strip(), path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, path


def follow(paths: list[Path], lines: int, forever: bool) -> Iterator[str]:
    """The last `lines` lines of each log (prefixed with its part when there are several),
    then, with `forever`, every line appended until interrupted."""
    prefix = len(paths) > 1
    offsets: dict[Path, int] = {}
    for path in paths:
        text = path.read_text(errors="replace") if path.exists() else ""
        offsets[path] = len(text.encode(errors="replace"))
        for line in text.splitlines()[-lines:] if lines else []:
            yield f"{path.stem:<22} {line}" if prefix else line
    while forever:
        quiet = True
        for path in paths:
            if not path.exists():
                continue
            size = path.stat().st_size
            if size < offsets[path]:
                offsets[path] = 0  # truncated or replaced
            if size == offsets[path]:
                continue
            with path.open("rb") as f:
                f.seek(offsets[path])
                chunk = f.read()
            # keep a partial last line for the next round
            complete, _, _rest = chunk.rpartition(b"\n")
            if not complete and not chunk.endswith(b"\n"):
                continue
            offsets[path] += len(complete) + 1
            quiet = False
            for line in complete.decode(errors="replace").splitlines():
                yield f"{path.stem:<22} {line}" if prefix else line
        if quiet:
            time.sleep(0.25)
