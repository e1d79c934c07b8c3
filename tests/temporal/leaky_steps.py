"""Step code that fails with its own key (and the service token) in the exception's text."""

from __future__ import annotations

import os

from cleanday.steps import StepContext, StepResult

KEY_ENV = "TEST_KEY_LEAKY"


async def run(ctx: StepContext) -> StepResult:
    key = os.environ[KEY_ENV]
    token = str(ctx.input["token"])
    try:
        raise ValueError(f"upstream said: bad credentials {key}")
    except ValueError as exc:
        raise RuntimeError(f"calling upstream with key={key} token={token} failed") from exc
