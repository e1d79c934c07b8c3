"""OpenRouter's management API: a behavior's own key with its limit, and its preset versions."""

from __future__ import annotations

from typing import Any

import httpx

from cleanday.errors import RegistrationError
from cleanday.secrets import Redactor, Secret

LIMIT_RESET = {"day": "daily", "week": "weekly", "month": "monthly"}


def preset_slug(behavior: str) -> str:
    return "cleanday-" + behavior.replace("_", "-")


class OpenRouterManagement:
    """Calls made with OPENROUTER_MANAGEMENT_KEY; the key never leaves the headers."""

    def __init__(
        self, base_url: str, management_key: Secret, client: httpx.AsyncClient, redactor: Redactor
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = management_key
        self.client = client
        self.redact = redactor
        redactor.add(management_key.reveal())

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            resp = await self.client.request(
                method,
                self.base_url + path,
                json=body,
                headers={"Authorization": f"Bearer {self._key.reveal()}"},
                timeout=30.0,
            )
        except httpx.HTTPError as exc:
            raise RegistrationError(
                f"OpenRouter management {method} {path}: {type(exc).__name__}; "
                "check OPENROUTER_BASE_URL and the network"
            ) from None
        if resp.status_code >= 400:
            raise RegistrationError(
                f"OpenRouter management {method} {path} answered {resp.status_code}: "
                f"{self.redact(resp.text[:300])}"
            )
        return resp.json()

    async def create_key(self, name: str, limit_usd: float, cadence: str) -> tuple[str, Secret]:
        """A new key limited to `limit_usd` per period; returns its hash and the secret."""
        data = await self._call(
            "POST",
            "/keys",
            {"name": name, "limit": limit_usd, "limit_reset": LIMIT_RESET[cadence]},
        )
        secret = Secret(str(data["key"]))
        self.redact.add(secret.reveal())
        return str(data["data"]["hash"]), secret

    async def update_key(self, key_hash: str, limit_usd: float, cadence: str) -> None:
        await self._call(
            "PATCH", f"/keys/{key_hash}", {"limit": limit_usd, "limit_reset": LIMIT_RESET[cadence]}
        )

    async def publish_preset(self, slug: str, body: dict[str, Any]) -> int | None:
        """Create the preset or a new version of it from an inference body; its version number."""
        data = await self._call("POST", f"/presets/{slug}/chat/completions", body)
        version = (data.get("data") or {}).get("designated_version") or {}
        number = version.get("version")
        return int(number) if number is not None else None
