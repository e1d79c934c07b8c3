"""The budget gate: the router refused the call for the key's cap, or a provider answered 402.

Options: `allow_402_fallback` (default false). A 402 means the behavior's key has run out of
credit at that provider; by default that fails the gate even when a fallback transport then
answered, because the key's cap is what contains a runaway loop.
"""

from __future__ import annotations

from cleanday.gates.base import GateCheck, Verdict

NAME = "budget"


def check(c: GateCheck) -> Verdict:
    refusal = c.context.refusal
    if refusal is not None and refusal.gate == NAME:
        return Verdict(False, refusal.reason or "the key's cap would be passed; no call was made")
    if not c.options.get("allow_402_fallback", False):
        for completion in c.completions:
            for attempt in completion.attempts:
                if attempt.status == 402:
                    return Verdict(
                        False,
                        f"provider answered 402 (payment required) on transport "
                        f"{attempt.transport} for model {attempt.model}: the key is out of credit",
                    )
    return Verdict(True, "within the key's cap")
