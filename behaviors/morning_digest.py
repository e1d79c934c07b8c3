"""morning_digest: every morning, pull items from a JSON API and summarise them through the model.

Config: `url` (http(s) URL of a JSON API answering a list of items or {"items": [...]}; a
`file:` URL reads a bundled sample, for offline use), `max_items` (default 10), `timeout_s`
(default 10), `title_field` / `text_field` (default "title" / "summary").
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from behaviors._common import bundled, plural
from cleanday.errors import ConfigError
from cleanday.steps import Action, StepContext, StepResult, tier_summary


async def fetch(url: str, timeout_s: float) -> Any:
    if url.startswith("file:"):
        return json.loads(bundled(url.removeprefix("file:")).read_text(encoding="utf-8"))
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()


def items_of(data: Any) -> list[dict[str, Any]]:
    raw = data.get("items", data.get("data")) if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise ValueError("the API must answer a JSON list of items or an object with 'items'")
    return [i if isinstance(i, dict) else {"title": str(i)} for i in raw]


async def run(ctx: StepContext) -> StepResult:
    url = ctx.config.get("url")
    if not url:
        raise ConfigError("morning_digest: config.url is missing: set the JSON API to summarise")
    max_items = int(ctx.config.get("max_items", 10))
    title_field = str(ctx.config.get("title_field", "title"))
    text_field = str(ctx.config.get("text_field", "summary"))
    items = items_of(await fetch(str(url), float(ctx.config.get("timeout_s", 10))))[:max_items]
    day = ctx.now.date().isoformat()
    lines = [
        f"- {item.get(title_field, '(untitled)')}: {item.get(text_field, '')}".rstrip(": ")
        for item in items
    ]
    completion = await ctx.model.complete(
        [
            {
                "role": "user",
                "content": f"Write the morning digest for {day} in at most five sentences, "
                f"from these {len(items)} items:\n" + "\n".join(lines),
            }
        ]
    )
    digest = completion.text.strip()
    content = f"# Morning digest {day}\n\n{digest}\n\nSources ({len(items)}):\n" + "\n".join(lines)
    n = plural(len(items), "item")
    return StepResult(
        output=digest,
        summary=tier_summary(
            ctx.tier,
            proposed=f"Proposal: morning digest for {day} from {n}.",
            staged=f"Morning digest for {day} staged from {n}, waiting for release.",
            done=f"1 digest written from {n}.",
        ),
        actions=[Action("write", f"digests/{day}.md", {"content": content})],
        metrics={"items": float(len(items))},
        completions=[completion],
    )
