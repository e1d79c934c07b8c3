"""Live smoke check: one cheap authenticated call per configured provider, with the real clients.

Each check costs nothing (no completion is bought): OpenRouter `GET /key`, Anthropic
`GET /v1/models`, Notion `users.me`, Slack `auth.test`. A provider whose credential is not
configured is skipped. Secrets are read from the environment and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from cleanday.config import Settings


@dataclass(frozen=True)
class SmokeResult:
    provider: str
    status: str  # "ok" | "failed" | "skipped"
    detail: str


T = TypeVar("T")


class Steps:
    """The steps of a deep smoke check (`smoke slack`, `smoke notion`), one result each: a
    step's failure is recorded with `secret` taken out of its message, never raised."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.results: list[SmokeResult] = []

    def __call__(self, name: str, call: Callable[[], tuple[str, T]]) -> T | None:
        """Run `call` (which returns its detail and a value) as step `name`; its value, or
        None when it failed."""
        try:
            detail, value = call()
        except Exception as exc:  # every failure is reported, with the secret taken out
            text = f"{type(exc).__name__}: {exc}".replace(self.secret, "<redacted>")
            self.results.append(SmokeResult(name, "failed", text[:300]))
            return None
        self.results.append(SmokeResult(name, "ok", str(detail)))
        return value


def _openrouter(settings: Settings, secret: str) -> str:
    url = settings.openrouter_base_url.rstrip("/") + "/key"
    r = httpx.get(url, headers={"Authorization": f"Bearer {secret}"}, timeout=15)
    r.raise_for_status()
    data = r.json().get("data", {})
    label, usage, limit = data.get("label", "?"), data.get("usage", "?"), data.get("limit")
    return f"key {label}: usage {usage}, limit {limit}"


def _anthropic(settings: Settings, secret: str) -> str:
    url = settings.anthropic_base_url.rstrip("/") + "/v1/models"
    headers = {"x-api-key": secret, "anthropic-version": "2023-06-01"}
    r = httpx.get(url, headers=headers, timeout=15)
    r.raise_for_status()
    return f"{len(r.json().get('data', []))} models visible"


def _notion(settings: Settings, secret: str) -> str:
    from notion_client import Client

    me = Client(auth=secret, base_url=settings.notion_base_url).users.me()
    return f"integration {me.get('name') or me.get('id')}"  # type: ignore[union-attr]


def _slack(settings: Settings, secret: str) -> str:
    from slack_sdk import WebClient

    resp = WebClient(token=secret, base_url=settings.slack_api_url).auth_test()
    return f"team {resp.get('team')}, bot user {resp.get('user')}"


CHECKS: dict[str, tuple[str, Callable[[Settings, str], str]]] = {
    "openrouter": ("OPENROUTER_API_KEY", _openrouter),
    "anthropic": ("ANTHROPIC_API_KEY", _anthropic),
    "notion": ("NOTION_TOKEN", _notion),
    "slack": ("SLACK_BOT_TOKEN", _slack),
}


def _describe(exc: Exception, secret: str) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.HTTPStatusError):
        text = f"HTTP {exc.response.status_code} from {exc.request.url}"
    return text.replace(secret, "<redacted>")


def run_smoke(settings: Settings, env: dict[str, str] | None = None) -> list[SmokeResult]:
    env = dict(os.environ) if env is None else env
    results = []
    for provider, (variable, check) in CHECKS.items():
        secret = env.get(variable, "")
        if not secret:
            results.append(SmokeResult(provider, "skipped", f"{variable} is not set"))
            continue
        try:
            results.append(SmokeResult(provider, "ok", check(settings, secret)))
        except Exception as exc:  # every failure is reported, none stops the other checks
            results.append(SmokeResult(provider, "failed", _describe(exc, secret)))
    return results
