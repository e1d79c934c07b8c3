"""`cleanday smoke` drives the real clients against whatever base URLs are configured."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from cleanday.cli import app
from cleanday.config import Settings
from cleanday.smoke import run_smoke

FAKE = "test-canary-smoke-7c1d"


class _Provider(BaseHTTPRequestHandler):
    """Answers each provider's cheapest authenticated call, only with the expected credential."""

    seen: list[tuple[str, str]] = []

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        bearer = self.headers.get("Authorization") == f"Bearer {FAKE}"
        return bearer or self.headers.get("x-api-key") == FAKE

    def _handle(self) -> None:
        self.seen.append((self.command, self.path))
        if not self._authorized():
            self._answer(401, {"ok": False, "error": "invalid_auth", "message": "bad token"})
        elif self.path == "/or/key":
            self._answer(200, {"data": {"label": "smoke", "usage": 0.5, "limit": 10}})
        elif self.path == "/anthropic/v1/models":
            self._answer(200, {"data": [{"id": "m1"}, {"id": "m2"}]})
        elif self.path == "/notion/v1/users/me":
            self._answer(200, {"object": "user", "id": "u1", "name": "cleanday", "type": "bot"})
        elif self.path == "/slack/auth.test":
            self._answer(200, {"ok": True, "team": "ops", "user": "cleanday"})
        else:
            self._answer(404, {"message": "unknown path"})

    do_GET = _handle
    do_POST = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _settings(base: str) -> Settings:
    return Settings(
        OPENROUTER_BASE_URL=f"{base}/or",
        ANTHROPIC_BASE_URL=f"{base}/anthropic",
        NOTION_BASE_URL=f"{base}/notion",
        SLACK_API_URL=f"{base}/slack/",
    )


def test_smoke_checks_every_configured_provider_with_its_real_client(provider: str) -> None:
    env = {k: FAKE for k in ("OPENROUTER_API_KEY", "ANTHROPIC_API_KEY", "NOTION_TOKEN")}
    env["SLACK_BOT_TOKEN"] = FAKE
    results = {r.provider: r for r in run_smoke(_settings(provider), env)}
    assert {p: r.status for p, r in results.items()} == dict.fromkeys(results, "ok")
    assert "2 models" in results["anthropic"].detail
    assert "team ops" in results["slack"].detail


def test_smoke_skips_unconfigured_providers_and_never_prints_a_secret(provider: str) -> None:
    env = {"OPENROUTER_API_KEY": "test-canary-wrong-0000"}
    results = {r.provider: r for r in run_smoke(_settings(provider), env)}
    assert results["openrouter"].status == "failed"
    assert "401" in results["openrouter"].detail
    assert "test-canary-wrong-0000" not in results["openrouter"].detail
    assert results["notion"].status == "skipped"


def test_smoke_command_fails_when_nothing_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENROUTER_API_KEY", "ANTHROPIC_API_KEY", "NOTION_TOKEN", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(app, ["smoke"])
    assert result.exit_code == 1
    assert "no provider credential is set" in result.output
