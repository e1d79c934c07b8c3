"""The `cleanday` command: `main` answers a read verb from the running ledger service when it
can (`cleanday.cli.quick`, standard library only), and otherwise runs the typer app of
`cleanday.cli.commands` (imported only then: typer and the verbs' modules are most of a start-up).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cleanday.cli.commands import app

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":  # `from cleanday.cli import app` (the tests' CliRunner) still works
        from cleanday.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    from cleanday.cli import quick

    quick_code = quick.answer(sys.argv[1:])
    if quick_code is not None:
        sys.exit(quick_code)
    from cleanday.cli.commands import app

    try:
        app()
        code = 0
    except SystemExit as done:
        if "temporalio" not in sys.modules:
            raise
        code = _exit_code(done.code)
    if "temporalio" in sys.modules:
        _exit_without_teardown(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _exit_without_teardown(code: int) -> None:
    """End a verb that used Temporal's client (`run`, a sign-off's wake-ups, `worker`) with its
    output flushed, but without the interpreter's teardown: the SDK's Rust runtime keeps threads
    that can abort that teardown (SIGABRT, "PyGILState_Release", temporalio/sdk-python#300), so
    that a verb that did its work would exit -6."""
    import contextlib
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)
