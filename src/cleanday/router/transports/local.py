"""A local OpenAI-compatible server (cleanday's local provider, vLLM, llama.cpp): free, and
never leaving the machine."""

from __future__ import annotations

from typing import Any, ClassVar

from cleanday.router.call import Answer, Call, Request, Route
from cleanday.router.transports.base import Transport
from cleanday.router.transports.chat import chat_body, parse_chat
from cleanday.secrets import Secret


class Local(Transport):
    name: ClassVar[str] = "local"
    # such a server may check a key (vLLM, llama.cpp --api-key), so the behavior's key goes in
    # the header when it resolves; unset is fine locally
    key_optional: ClassVar[bool] = True
    bills: ClassVar[bool] = False

    # provider and retention guardrails do not apply: nothing leaves the machine (the base
    # class's `check` refuses nothing)

    def estimate(self, call: Call, route: Route) -> float:
        return 0.0

    def request(self, call: Call, route: Route, key: Secret | None) -> Request:
        body = chat_body(call, route)
        body.update(call.params)
        body["model"] = route.model
        if call.response_format is not None:
            body["response_format"] = call.response_format
        headers = {"Authorization": f"Bearer {key.reveal()}"} if key is not None else {}
        url = self.settings.resolved_local_provider_url.rstrip("/") + "/chat/completions"
        return Request(url, headers, body)

    def parse(self, route: Route, data: Any) -> Answer:
        text, model, tokens_in, tokens_out, _ = parse_chat(route, data)
        return Answer(text, model, tokens_in, tokens_out, 0.0)
