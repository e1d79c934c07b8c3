"""The OpenAI-compatible chat completions shape, spoken by OpenRouter and by local servers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cleanday.router.call import Call, Route
from cleanday.router.transports.base import count, obj, usage_of


def chat_body(call: Call, route: Route) -> dict[str, Any]:
    """The messages after the preset's system prompt, and the behavior as the end user."""
    system = call.system_prompt
    messages = [{"role": "system", "content": system}] if system else []
    messages += call.messages
    return {"messages": messages, "user": call.binding.behavior}


def parse_chat(route: Route, data: Any) -> tuple[str, str, int, int, Mapping[str, Any] | None]:
    """(text, model, tokens in, tokens out, usage or None) of a chat completion; ValueError
    naming the field when it is not one."""
    body = obj(data, "the answer")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("choices is not a list with an answer in it")
    message = obj(obj(choices[0], "choices[0]").get("message"), "choices[0].message")
    content = message.get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    usage = usage_of(body)
    model = body.get("model")
    model = model if isinstance(model, str) and model else route.model
    return text, model, count(usage, "prompt_tokens"), count(usage, "completion_tokens"), usage
