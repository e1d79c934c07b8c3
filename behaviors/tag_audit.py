"""tag_audit: tags posts from a fixed vocabulary with strict JSON output.

Config: `vocabulary` (the allowed tags), `posts` (list of {id, title, body}; the run's input
`posts` replaces them), `max_tags` (default 3). The answer must be
{"posts": [{"id": ..., "tags": [...]}]}; the Work Order's output_schema enumerates the
vocabulary, so a tag outside it fails the schema gate. An answer that is not JSON is passed on
as text for the schema gate to refuse, rather than repaired here.
"""

from __future__ import annotations

import json
from typing import Any

from behaviors._common import parse_json_answer, plural
from cleanday.errors import ConfigError
from cleanday.steps import Action, StepContext, StepResult, tier_summary


def response_format(vocabulary: list[str], max_tags: int) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "tag_audit",
            "strict": True,
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["posts"],
                "properties": {
                    "posts": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["id", "tags"],
                            "properties": {
                                "id": {"type": "string"},
                                "tags": {
                                    "type": "array",
                                    "maxItems": max_tags,
                                    "items": {"type": "string", "enum": vocabulary},
                                },
                            },
                        },
                    }
                },
            },
        },
    }


async def run(ctx: StepContext) -> StepResult:
    vocabulary = [str(v) for v in ctx.config.get("vocabulary", [])]
    if not vocabulary:
        raise ConfigError("tag_audit: config.vocabulary is empty: list the allowed tags")
    posts = ctx.input.get("posts") or ctx.config.get("posts") or []
    max_tags = int(ctx.config.get("max_tags", 3))
    listing = "\n".join(
        f"- id {p['id']}: {p.get('title', '')} — {p.get('body', '')}".rstrip(" —") for p in posts
    )
    completion = await ctx.model.complete(
        [
            {
                "role": "user",
                "content": f"Tag each post with 1 to {max_tags} tags from exactly this "
                f"vocabulary: {', '.join(vocabulary)}. Answer only JSON "
                '{"posts": [{"id": "...", "tags": ["..."]}]}.\n' + listing,
            }
        ],
        response_format=response_format(vocabulary, max_tags),
    )
    output: str | dict[str, Any]
    try:
        output = parse_json_answer(completion.text)
        if not isinstance(output, dict):
            output = completion.text
    except ValueError:
        output = completion.text
    tagged = len(output.get("posts", [])) if isinstance(output, dict) else 0
    day = ctx.now.date().isoformat()
    run = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in ctx.run_id)
    content = json.dumps(output, indent=2, sort_keys=True) if isinstance(output, dict) else output
    n = plural(tagged, "post")
    return StepResult(
        output=output,
        summary=tier_summary(
            ctx.tier,
            proposed=f"Proposal: tags for {n}.",
            staged=f"Tags for {n} staged, waiting for release.",
            done=f"{n} tagged.",
        ),
        actions=[Action("write", f"tags/{day}-{run}.json", {"content": content + "\n"})],
        metrics={"posts": float(tagged)},
        completions=[completion],
    )
