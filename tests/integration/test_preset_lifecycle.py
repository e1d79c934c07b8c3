# ruff: noqa: F401, F811
"""The preset lifecycle through the ledger: registration numbers the versions, a promotion
publishes the current version for the new tier, a demotion restores the last version that was
clean at the lower tier, and the next model call sends what was restored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from cleanday.cli import app as cli_app
from cleanday.config import get_settings
from cleanday.domain import Decision, Policy, Tier
from cleanday.ledger import LedgerService
from cleanday.notices import PresetPublished
from cleanday.outbox import Message
from cleanday.presets import PresetStore
from cleanday.reactions import HANDLERS, Context, Reactions
from cleanday.registration import load_work_order
from tests.fakes.router_fixtures import (
    MakeRouter,
    Provider,
    _primary_server,
    _secondary_server,
    make_router,
    primary,
    routing_engine,
    secondary,
)
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

SUNDAY = date(2026, 11, 22)
HELLO = [{"role": "user", "content": "audit example.com"}]


def _preset(prompt: str, temperature: float) -> dict[str, Any]:
    return {
        "name": "seo_audit-preset",
        "system_prompt": prompt,
        "model": "local/echo",
        "parameters": {"temperature": temperature, "max_tokens": 100},
    }


def _write(tmp_path: Path, prompt: str, temperature: float) -> Path:
    return write_work_order(
        tmp_path,
        "seo_audit",
        preset=_preset(prompt, temperature),
        transports={"order": ["local"]},
    )


def _history(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    out = CliRunner().invoke(cli_app, ["preset", "history", "seo_audit"])
    get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    return out.output.strip().splitlines()


def test_registration_records_the_preset_version_that_history_and_restore_use(
    routing_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = LedgerService(routing_engine, Policy(timezone="UTC"), FakeClock(at("2026-11-08", 10)))
    first = svc.register(_write(tmp_path, "v1 prompt", 0.7))
    again = svc.register(_write(tmp_path, "v2 prompt", 0.7))
    assert (first.preset_version, again.preset_version) == (1, 2)
    store = PresetStore(routing_engine)
    assert [(v.version, v.spec.system_prompt) for v in store.history("seo_audit")] == [
        (1, "v1 prompt"),
        (2, "v2 prompt"),
    ]
    restored = store.restore("seo_audit", 1)  # what `cleanday preset restore` does
    assert restored.version == 3
    assert svc.list_behaviors()[0].preset_version == 3  # one numbering
    # a later edit of the file is the next version after the restore, not a second v3
    assert svc.register(_write(tmp_path, "v4 prompt", 0.7)).preset_version == 4
    lines = _history(routing_engine, monkeypatch)
    assert [line.split()[0] for line in lines] == ["v1", "v2", "v3", "v4"]
    assert "published for A (registration" in lines[0]


async def test_promoted_then_edited_then_demoted_calls_the_model_with_the_version_clean_at_a(
    routing_engine: Engine,
    make_router: MakeRouter,
    primary: Provider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(at("2026-11-08", 10))
    svc = LedgerService(routing_engine, Policy(timezone="UTC"), clock)
    router = make_router(env={"TEST_KEY_SEO_AUDIT": "local-key"})
    svc.register(_write(tmp_path, "v1 prompt", 0.7))
    router.bind_local(load_work_order(_write(tmp_path, "v1 prompt", 0.7)))
    for i in range(7):  # seven clean days at A: a candidate in the review of Nov 22
        d = date(2026, 11, 9) + timedelta(days=i)
        clock.set(at(d.isoformat(), 12))
        svc.report_run(report("seo_audit", f"r-{d}", at(d.isoformat(), 12)))
        clock.set(at((d + timedelta(days=1)).isoformat(), 0, 5))
        svc.close_day(d)
    clock.set(at("2026-11-22", 10))
    svc.decide("seo_audit", SUNDAY, Decision.PROMOTE)
    clock.set(at("2026-11-23", 0, 10))
    assert svc.close_sunday(SUNDAY).promoted == ["seo_audit"]

    clock.set(at("2026-11-23", 9))
    edited = svc.register(_write(tmp_path, "v2 prompt, riskier", 0.9))  # the preset edited at B
    assert edited.preset_version == 2
    await router.complete("seo_audit", Tier.B, HELLO)
    sent = primary.requests()[-1]["body"]
    assert (sent["messages"][0]["content"], sent["temperature"]) == ("v2 prompt, riskier", 0.9)

    clock.set(at("2026-11-23", 12))
    failed = svc.report_run(
        report("seo_audit", "r-bad", at("2026-11-23", 12), failed_gate="schema")
    )
    assert failed.state.tier == Tier.A
    # a worker restarting with the edited file binds again: it reads, it does not record
    assert (
        router.bind_local(load_work_order(_write(tmp_path, "v2 prompt, riskier", 0.9))).version == 3
    )
    await router.complete("seo_audit", Tier.A, HELLO)
    sent = primary.requests()[-1]["body"]
    assert (sent["messages"][0]["content"], sent["temperature"]) == ("v1 prompt", 0.7)
    assert svc.list_behaviors()[0].preset_version == 3

    v1, v2, v3 = _history(routing_engine, monkeypatch)
    assert v1.startswith("v1") and "registered" in v1
    assert "A (registration, 2026-11-08)" in v1
    assert "B (promotion, review of 2026-11-22, 2026-11-23)" in v1
    assert "A (clean at promotion, 2026-11-23)" in v1
    assert v2.startswith("v2") and "published" not in v2
    assert v3.startswith("v3") and "restored v1" in v3
    assert "A (demotion: schema failed, 2026-11-23)" in v3


def test_a_forced_tier_publishes_for_that_tier_without_calling_it_clean_below(
    routing_engine: Engine, tmp_path: Path
) -> None:
    clock = FakeClock(at("2026-11-08", 10))
    svc = LedgerService(routing_engine, Policy(timezone="UTC"), clock)
    svc.register(_write(tmp_path, "v1 prompt", 0.7))
    svc.override("seo_audit", "trusted already", tier=Tier.C)
    pubs = PresetStore(routing_engine).publications("seo_audit")
    assert [(p.tier, p.version, p.reason) for p in pubs] == [
        ("A", 1, "registration"),
        ("C", 1, "forced promotion"),
    ]


def test_every_publication_is_a_notice_for_the_reactions_that_follow(
    routing_engine: Engine, tmp_path: Path
) -> None:
    seen: list[PresetPublished] = []

    def record(n: PresetPublished, ctx: Context) -> Iterator[Message]:
        seen.append(n)
        return iter(())

    handlers = {**HANDLERS, PresetPublished: [*HANDLERS[PresetPublished], record]}
    clock = FakeClock(at("2026-11-08", 10))
    svc = LedgerService(routing_engine, Policy(timezone="UTC"), clock, Reactions(handlers))
    svc.register(_write(tmp_path, "v1 prompt", 0.7))
    svc.override("seo_audit", "trusted already", tier=Tier.C)
    svc.register(_write(tmp_path, "v2 prompt", 0.7))
    clock.set(at("2026-11-09", 12))
    svc.report_run(report("seo_audit", "r1", at("2026-11-09", 12), failed_gate="schema"))
    assert [(n.tier, n.version, n.reason, n.restored) for n in seen] == [
        (Tier.A, 1, "registration", False),
        (Tier.C, 1, "forced promotion", False),
        (Tier.B, 3, "demotion: schema failed", True),  # v1, clean at A below B, as v3
    ]


def test_preset_restore_command_publishes_the_new_version_for_the_current_tier(
    routing_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[PresetPublished] = []

    def record(n: PresetPublished, ctx: Context) -> Iterator[Message]:
        seen.append(n)
        return iter(())

    handlers = {**HANDLERS, PresetPublished: [*HANDLERS[PresetPublished], record]}
    clock = FakeClock(at("2026-11-08", 10))
    svc = LedgerService(routing_engine, Policy(timezone="UTC"), clock, Reactions(handlers))
    svc.register(_write(tmp_path, "v1 prompt", 0.7))
    svc.override("seo_audit", "trusted already", tier=Tier.C)
    svc.register(_write(tmp_path, "v2 prompt", 0.9))
    seen.clear()

    restored = svc.restore_preset("seo_audit", 1, by="cli")

    assert restored == 3
    assert svc.list_behaviors()[0].preset_version == 3  # one numbering, at once
    current = PresetStore(routing_engine).current("seo_audit")
    assert (current.version, current.spec.system_prompt) == (3, "v1 prompt")
    assert [(n.tier, n.version, n.reason, n.restored) for n in seen] == [
        (Tier.C, 3, "restored v1 by cli", True)
    ]
    lines = _history(routing_engine, monkeypatch)
    assert lines[2].startswith("v3") and "published for C (restored v1 by cli" in lines[2]


def test_preset_restore_command_names_a_version_that_does_not_exist(
    routing_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = LedgerService(routing_engine, Policy(timezone="UTC"), FakeClock(at("2026-11-08", 10)))
    svc.register(_write(tmp_path, "v1 prompt", 0.7))
    monkeypatch.setenv("DATABASE_URL", routing_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["preset", "restore", "seo_audit", "1"])
    missing = runner.invoke(cli_app, ["preset", "restore", "seo_audit", "7"])
    get_settings.cache_clear()
    assert ok.exit_code == 0 and "seo_audit: v2 restored from v1" in ok.output, ok.output
    assert missing.exit_code == 1 and "no preset version 7" in missing.output, missing.output
