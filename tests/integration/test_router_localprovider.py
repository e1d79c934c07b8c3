# ruff: noqa: F401, F811
"""The local provider: scripted answers per behavior, faults on demand, requests validated."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import yaml

from tests.fakes.router_fixtures import Provider, local_provider

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


def _chat(p: Provider, behavior: str, content: str = "hello") -> httpx.Response:
    return httpx.post(
        p.url + CHAT,
        json={
            "model": "local/any",
            "messages": [{"role": "user", "content": content}],
            "user": behavior,
        },
    )


def _message(p: Provider, behavior: str) -> httpx.Response:
    return httpx.post(
        p.url + MESSAGES,
        json={
            "model": "local-any",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hello"}],
            "metadata": {"user_id": behavior},
        },
    )


def test_scripted_answers_cycle_per_behavior_in_both_shapes(
    local_provider: Provider, tmp_path: Path
) -> None:
    (tmp_path / "local_scripts.yaml").write_text(
        yaml.safe_dump({"tagger": {"answers": ["one", "two"]}, "poster": {"answers": ["p"]}})
    )
    texts = [
        _chat(local_provider, "tagger").json()["choices"][0]["message"]["content"] for _ in range(3)
    ]
    assert texts == ["one", "two", "one"]
    assert _message(local_provider, "tagger").json()["content"][0]["text"] == "two"
    assert _message(local_provider, "poster").json()["content"][0]["text"] == "p"


def test_unscripted_behavior_gets_a_deterministic_echo(local_provider: Provider) -> None:
    first = _chat(local_provider, "nobody", "same words").json()
    second = _chat(local_provider, "nobody", "same words").json()
    text = first["choices"][0]["message"]["content"]
    assert text == second["choices"][0]["message"]["content"]
    assert text == "local answer for nobody: same words"
    assert first["usage"]["cost"] == 0.0


def test_requests_outside_the_openrouter_description_get_400(local_provider: Provider) -> None:
    resp = httpx.post(local_provider.url + CHAT, json={"messages": "not a list", "user": "x"})
    assert resp.status_code == 400
    assert "messages" in resp.json()["error"]["message"]
    resp = httpx.post(local_provider.url + MESSAGES, json={"messages": []})  # no model
    assert resp.status_code == 400
    assert "model" in resp.json()["error"]["message"]
    seen = local_provider.requests()
    assert [r["path"] for r in seen] == [CHAT, MESSAGES]


def test_faults_are_served_on_demand_then_clear(local_provider: Provider) -> None:
    local_provider.fault("tagger", "429", count=2, retry_after=3)
    for _ in range(2):
        resp = _chat(local_provider, "tagger")
        assert resp.status_code == 429 and resp.headers["retry-after"] == "3"
    assert _chat(local_provider, "tagger").status_code == 200
    local_provider.fault("tagger", "402")
    assert _message(local_provider, "tagger").status_code == 402
    local_provider.fault("*", "500")
    assert _chat(local_provider, "anyone").status_code == 500
    local_provider.fault("tagger", "pii")
    assert (
        "@example.com" in _chat(local_provider, "tagger").json()["choices"][0]["message"]["content"]
    )
    local_provider.fault("tagger", "malformed_json")
    broken = _message(local_provider, "tagger").json()["content"][0]["text"]
    assert broken.startswith("{") and not broken.rstrip().endswith("}")
    # faults are per behavior: another behavior was untouched throughout
    assert _chat(local_provider, "poster").status_code == 200


def test_slow_fault_delays_the_answer(local_provider: Provider) -> None:
    local_provider.fault("tagger", "slow", delay_s=0.5)
    started = time.monotonic()
    assert _chat(local_provider, "tagger").status_code == 200
    assert time.monotonic() - started >= 0.5


def test_unknown_fault_is_refused(local_provider: Provider) -> None:
    resp = httpx.post(
        local_provider.url + "/_control/faults", json={"behavior": "x", "fault": "418"}
    )
    assert resp.status_code == 422
