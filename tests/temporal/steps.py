"""Step code of the test behaviors: one model call, a file to write, switches to misbehave."""

from __future__ import annotations

from cleanday.steps import Action, StepContext, StepResult


async def run(ctx: StepContext) -> StepResult:
    if ctx.input.get("crash"):
        raise RuntimeError("the step crashed")
    completion = await ctx.model.complete(
        [{"role": "user", "content": f"Write one line about {ctx.input.get('topic', 'today')}."}]
    )
    text = completion.text
    if ctx.input.get("leak"):
        text += " Write to jane.doe@example.com for details."
    return StepResult(
        output=text,
        summary=f"1 note {'written' if ctx.tier.rank >= 2 else 'drafted'}.",
        actions=[Action("write", f"{ctx.run_id}.txt", {"content": text})],
        completions=[completion],
    )
