"""The failure gate: the run failed after its retry policy, was rate limited out, or timed out."""

from __future__ import annotations

from cleanday.gates.base import GateCheck, Verdict

NAME = "failure"
RATE_LIMIT_ATTEMPTS = 3


def check(c: GateCheck) -> Verdict:
    ctx = c.context
    if ctx.timed_out:
        limit = f" ({ctx.timeout_s:g} s)" if ctx.timeout_s is not None else ""
        klass = f" in its timeout class {ctx.timeout_class}{limit}" if ctx.timeout_class else limit
        detail = f": {ctx.error}" if ctx.error else ""
        return Verdict(False, f"run timed out{klass}{detail}")
    if ctx.rate_limited >= RATE_LIMIT_ATTEMPTS:
        return Verdict(
            False,
            f"{ctx.rate_limited} consecutive 429 (rate limited) answers: a documented failure "
            "after the retry policy, not an endless retry",
        )
    if ctx.error:
        plural = "attempt" if ctx.attempts == 1 else "attempts"
        return Verdict(False, f"run failed after {ctx.attempts} {plural}: {ctx.error}")
    if ctx.refusal is not None:
        return Verdict(True, f"no failure: the {ctx.refusal.gate} gate refused the call")
    if c.result is None:
        return Verdict(False, "run produced no result and reported no error")
    return Verdict(True, "run finished")
