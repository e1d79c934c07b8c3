"""Custom gates a behavior declares: `entry: module:function`, called as `fn(output, options)`.

The function returns `(passed, reason)`. It sees the output after earlier gates (so after any
redaction). An exception, or an answer of the wrong shape, fails the gate with a reason that
names the entry point.
"""

from __future__ import annotations

from cleanday.gates.base import GateCheck, Verdict
from cleanday.gates.loading import load_entry


def check(c: GateCheck, entry: str) -> Verdict:
    try:
        fn = load_entry(entry)
        answer = fn(c.output, dict(c.options))
    except Exception as exc:
        return Verdict(False, f"custom gate {entry} raised {type(exc).__name__}: {exc}")
    if (
        not isinstance(answer, tuple)
        or len(answer) != 2
        or not isinstance(answer[0], bool)
        or not isinstance(answer[1], str)
    ):
        return Verdict(
            False, f"custom gate {entry} must return (passed: bool, reason: str), got {answer!r}"
        )
    return Verdict(answer[0], answer[1])
