"""The Anthropic messages API, direct: for the models the routing config maps to it."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from cleanday.errors import PolicyViolation
from cleanday.router.call import Answer, Call, Request, Route
from cleanday.router.config import RouterConfig
from cleanday.router.transports.base import Transport, count, max_tokens, obj, usage_of
from cleanday.secrets import Secret
from cleanday.workorder import Guardrails, PresetSpec


class Anthropic(Transport):
    name: ClassVar[str] = "anthropic"

    def route(self, spec: PresetSpec) -> Route | None:
        """The first of the preset's models Anthropic serves, under its Anthropic id; none
        when it serves none of them. Fallback models are OpenRouter's: one model here."""
        for model in (spec.model, *spec.fallback_models):
            anthropic_id = self.config.anthropic_model(model)
            if anthropic_id:
                return Route(self.name, anthropic_id, (model,), dict(spec.provider))
        return None

    @classmethod
    def check(cls, route: Route, guard: Guardrails, config: RouterConfig, where: str) -> None:
        allowed = guard.allowed_providers
        if allowed is not None and "anthropic" not in allowed:
            raise PolicyViolation(
                f"{where}: transport anthropic is not an allowed provider {sorted(allowed)}; "
                "remove it from transports.order or allow the provider"
            )
        if guard.require_zdr and not config.anthropic_zdr:
            raise PolicyViolation(
                f"{where}: zero data retention is required but the direct Anthropic account "
                "is not configured as ZDR (anthropic_zdr in the router config)"
            )

    def request(self, call: Call, route: Route, key: Secret | None) -> Request:
        assert key is not None
        params = call.params
        system = "\n\n".join(
            [call.system_prompt]
            + [str(m["content"]) for m in call.messages if m["role"] == "system"]
        ).strip()
        if call.response_format is not None:
            system += "\n\nAnswer with JSON only" + (
                f", matching this schema: {json.dumps(call.response_format)}"
            )
        body: dict[str, Any] = {
            "model": route.model,
            "max_tokens": int(max_tokens(params, self.config)),
            "messages": [m for m in call.messages if m["role"] != "system"],
            "metadata": {"user_id": call.binding.behavior},
        }
        if system:
            body["system"] = system
        for name in ("temperature", "top_p", "top_k"):
            if name in params:
                body[name] = params[name]
        if "stop" in params:
            body["stop_sequences"] = params["stop"]
        url = self.settings.anthropic_base_url.rstrip("/") + "/v1/messages"
        headers = {"x-api-key": key.reveal(), "anthropic-version": self.config.anthropic_version}
        return Request(url, headers, body)

    def parse(self, route: Route, data: Any) -> Answer:
        body = obj(data, "the answer")
        content = body.get("content")
        if not isinstance(content, list):
            raise ValueError("content is not a list of blocks")
        texts = []
        for i, block in enumerate(content):
            block = obj(block, f"content[{i}]")
            if block.get("type") == "text":
                part = block.get("text", "")
                if not isinstance(part, str):
                    raise ValueError(f"content[{i}].text is not text")
                texts.append(part)
        usage = usage_of(body)
        tokens_in, tokens_out = count(usage, "input_tokens"), count(usage, "output_tokens")
        model = body.get("model")
        model = model if isinstance(model, str) and model else route.model
        if usage is None:
            return Answer("".join(texts), model, 0, 0, None)
        # the price table is keyed by the preset's model name (route.models[0]); the
        # Anthropic API answers with its own id for it
        cost = self.price(route.models[0], tokens_in, tokens_out) or self.price(
            model, tokens_in, tokens_out
        )
        return Answer("".join(texts), model, tokens_in, tokens_out, cost)
