"""OpenRouter: chat completions with fallback models, provider routing and published presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from cleanday.budget.base import BindingRow
from cleanday.errors import PolicyViolation
from cleanday.router.call import Answer, Call, Request, Route
from cleanday.router.config import RouterConfig
from cleanday.router.transports.base import Transport
from cleanday.router.transports.chat import chat_body, parse_chat
from cleanday.secrets import Secret
from cleanday.workorder import Guardrails


def provisioned_key_path(data_dir: Path, behavior: str) -> Path:
    """Where the behavior's own OpenRouter key lives once cleanday provisioned it (mode 0600)."""
    return data_dir / "keys" / f"{behavior}.openrouter"


def _provider_of(model: str) -> str | None:
    prefix, sep, _ = model.partition("/")
    return prefix if sep else None


class OpenRouter(Transport):
    name: ClassVar[str] = "openrouter"
    uses_model_list: ClassVar[bool] = True

    @classmethod
    def check(cls, route: Route, guard: Guardrails, config: RouterConfig, where: str) -> None:
        if guard.allowed_providers is not None:
            allowed = set(guard.allowed_providers)
            for model in route.models:
                provider = _provider_of(model)
                if provider is not None and provider not in allowed:
                    raise PolicyViolation(
                        f"{where}: model {model} is from provider {provider}, not in the "
                        f"allowed providers {sorted(allowed)}"
                    )
            only = route.provider.get("only")
            if only and not set(only) <= allowed:
                raise PolicyViolation(
                    f"{where}: preset provider.only {sorted(only)} names providers outside "
                    f"the allowed {sorted(allowed)}"
                )
        if guard.require_zdr and route.provider.get("zdr") is False:
            raise PolicyViolation(
                f"{where}: zero data retention is required but the preset sets provider.zdr "
                "to false"
            )

    def key_ref(self, binding: BindingRow) -> str:
        if binding.openrouter_key_hash:
            # the behavior's own provisioned key (limit = its cap), not the configured one
            return f"file:{provisioned_key_path(self.settings.data_dir, binding.behavior)}"
        return super().key_ref(binding)

    def request(self, call: Call, route: Route, key: Secret | None) -> Request:
        assert key is not None
        body = chat_body(call, route)
        slug = call.binding.preset_slug
        if slug:
            # the published preset carries model, prompt and fallbacks; the tier's
            # parameters go with the request, which takes precedence over the preset's
            body["model"] = f"@preset/{slug}"
            body["messages"] = call.messages
            body.update(call.params)
        else:
            body.update(call.params)
            body["model"] = route.model
            if len(route.models) > 1:
                body["models"] = list(route.models)
        provider = dict(route.provider)
        if call.require_zdr:
            provider["zdr"] = True
        if provider:
            body["provider"] = provider
        if call.response_format is not None:
            body["response_format"] = call.response_format
        url = self.settings.openrouter_base_url.rstrip("/") + "/chat/completions"
        return Request(url, {"Authorization": f"Bearer {key.reveal()}"}, body)

    def parse(self, route: Route, data: Any) -> Answer:
        text, model, tokens_in, tokens_out, usage = parse_chat(route, data)
        if usage is None:
            return Answer(text, model, tokens_in, tokens_out, None)
        # OpenRouter reports what the call cost; the price table stands in for a missing or
        # impossible report
        cost, doubt = self.reported_cost(usage.get("cost"), model, tokens_in, tokens_out)
        return Answer(text, model, tokens_in, tokens_out, cost, doubt)
