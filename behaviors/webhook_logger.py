"""webhook_logger: appends each verified webhook event to a log as one timestamped line.

Input: the webhook's JSON body (the service verified its signature before starting the run).
The event id is the body's `event_id` or `id`, else the run id, so a retried act never logs an
event twice. With config `describe: true` the model writes a short label for the line.
Config: `log` (the log file, default "events.log"), `describe` (default false).
"""

from __future__ import annotations

import json
from typing import Any

from cleanday.steps import Action, StepContext, StepResult, tier_summary


def event_id(body: dict[str, Any], run_id: str) -> str:
    given = body.get("event_id") or body.get("id")
    raw = str(given) if given else run_id
    # The log line format reserves spaces and brackets around the id.
    return "".join(ch if ch.isalnum() or ch in "-_.:" else "_" for ch in raw)[:120] or run_id


async def run(ctx: StepContext) -> StepResult:
    body = ctx.input
    eid = event_id(body, ctx.run_id)
    at = ctx.now.isoformat(timespec="seconds")
    event = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    completions = []
    line = event
    if ctx.config.get("describe", False):
        completion = await ctx.model.complete(
            [
                {
                    "role": "user",
                    "content": "Label this webhook event in at most eight words, "
                    f"no punctuation at the end:\n{event}",
                }
            ]
        )
        completions.append(completion)
        label = " ".join(completion.text.split())[:120]
        line = f"{label} {event}"
    log = str(ctx.config.get("log", "events.log"))
    return StepResult(
        output=line,
        summary=tier_summary(
            ctx.tier,
            proposed=f"Proposal: log event {eid}.",
            staged=f"Event {eid} staged for the log, waiting for release.",
            done=f"1 event logged ({eid}).",
        ),
        actions=[Action("append_log", log, {"event_id": eid, "at": at, "line": line})],
        completions=completions,
    )
