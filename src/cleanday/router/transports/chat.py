"""The OpenAI-compatible chat completions shape, spoken by OpenRouter and by local servers."""

from __future__ import annotations

import json
from typing import Any

from cleanday.router.call import Call, Route


def chat_body(call: Call, route: Route) -> dict[str, Any]:
    """The messages after the preset's system prompt, and the behavior as the end user."""
    system = call.system_prompt
    messages = [{"role": "system", "content": system}] if system else []
    messages += call.messages
    return {"messages": messages, "user": call.binding.behavior}


def parse_chat(route: Route, data: dict[str, Any]) -> tuple[str, str, int, int, dict[str, Any]]:
    """(text, model, tokens in, tokens out, usage) of a chat completion."""
    message = data["choices"][0]["message"]
    content = message.get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    usage = data.get("usage") or {}
    tokens_in = int(usage.get("prompt_tokens") or 0)
    tokens_out = int(usage.get("completion_tokens") or 0)
    return text, str(data.get("model") or route.model), tokens_in, tokens_out, usage
