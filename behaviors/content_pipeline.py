"""content_pipeline: draft a post, review it, publish it — two model calls, one post per run.

What the run did is plain at every tier: at A the post is a proposal, at B it is staged and
waits for the operator's release, at C and Wings it is published ("1 post published.").
Config: `topics` (the run picks one by the day of the year; input `topic` overrides),
`words` (target length, default 150).
"""

from __future__ import annotations

import re

from cleanday.errors import ConfigError
from cleanday.steps import Action, StepContext, StepResult, tier_summary


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:60].rstrip("-") or "post"


def title_of(post: str, fallback: str) -> str:
    for line in post.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:120]
    return fallback


async def run(ctx: StepContext) -> StepResult:
    topics = [str(t) for t in ctx.config.get("topics", [])]
    topic = str(ctx.input.get("topic") or "")
    if not topic:
        if not topics:
            raise ConfigError("content_pipeline: config.topics is empty: list what to write about")
        topic = topics[ctx.now.timetuple().tm_yday % len(topics)]
    words = int(ctx.config.get("words", 150))
    draft = await ctx.model.complete(
        [
            {
                "role": "user",
                "content": f"Draft a blog post of about {words} words on: {topic}. "
                "Start with a one-line title.",
            }
        ]
    )
    review = await ctx.model.complete(
        [
            {
                "role": "user",
                "content": "Review this draft for accuracy and clarity and answer with the "
                "corrected post only, title first:\n\n" + draft.text,
            }
        ]
    )
    post = review.text.strip() or draft.text.strip()
    title = title_of(post, topic)
    day = ctx.now.date().isoformat()
    target = f"posts/{day}-{slugify(title)}.md"
    return StepResult(
        output=post,
        summary=tier_summary(
            ctx.tier,
            proposed=f"1 post proposed: {title!r}.",
            staged=f"1 post staged, waiting for release: {title!r}.",
            done="1 post published.",
        ),
        actions=[Action("publish", target, {"content": post + "\n", "title": title})],
        metrics={"words": float(len(post.split()))},
        completions=[draft, review],
    )
