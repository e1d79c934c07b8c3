"""Reloading workers: SIGHUP makes `cleanday worker` finish its in-flight activities and then
re-execute itself, so it imports changed step code and reads its settings afresh; `cleanday
reload` sends SIGHUP to every worker of this data directory, found by the pid files they keep
in `<data dir>/run/workers/` while they run (a second line, `ready`, once a worker polls its
task queue: what `cleanday up` waits for). Re-executing keeps the process ID, so whoever
started the worker (`cleanday up`, systemd) still watches the same process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from cleanday.config import Settings


def pid_dir(settings: Settings) -> Path:
    return settings.data_dir / "run" / "workers"


@contextlib.contextmanager
def pid_file(settings: Settings) -> Iterator[Path]:
    """This worker's pid file for as long as it runs."""
    directory = pid_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / str(os.getpid())
    path.write_text(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


READY = "ready"


def mark_ready(path: Path) -> None:
    """Say in this worker's pid file that it polls its task queue now."""
    path.write_text(f"{os.getpid()}\n{READY}\n")


def ready_workers(settings: Settings) -> list[int]:
    """The running workers of this data directory that poll their task queue."""
    directory = pid_dir(settings)
    ready = []
    for pid in worker_pids(settings):
        with contextlib.suppress(OSError):
            if READY in (directory / str(pid)).read_text().split():
                ready.append(pid)
    return ready


def worker_pids(settings: Settings) -> list[int]:
    """The running workers of this data directory (pid files of dead ones are removed)."""
    directory = pid_dir(settings)
    found: list[int] = []
    for path in sorted(directory.glob("*")) if directory.is_dir() else []:
        try:
            pid = int(path.name)
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            path.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass  # alive, another user's: still listed
        found.append(pid)
    return found


def reload_workers(settings: Settings) -> list[int]:
    """SIGHUP to every running worker of this data directory; the pids told."""
    told = []
    for pid in worker_pids(settings):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)
            told.append(pid)
    return told


def reexec() -> NoReturn:
    """Replace this process with a fresh `cleanday` of the same arguments (same pid)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "cleanday.cli", *sys.argv[1:]])
