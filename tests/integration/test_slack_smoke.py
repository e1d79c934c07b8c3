"""`cleanday smoke slack` against the fake Slack: posts a test message, deletes it, reports
each step, never prints the token."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cleanday.cli import app
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_slack, slack_server

__all__ = ["_shared_slack", "slack_server"]


def test_smoke_slack_posts_a_test_message_and_deletes_it(
    slack_server: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in slack_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CLEANDAY_SLACK_CHANNEL", "#alerts")
    out = CliRunner().invoke(app, ["smoke", "slack"])
    assert out.exit_code == 0, out.output
    assert [line.split()[:3] for line in out.output.splitlines()] == [
        ["slack", "auth", "ok"], ["slack", "post", "ok"], ["slack", "delete", "ok"],
    ]  # fmt: skip
    assert slack_server.messages("#alerts") == []
    assert [r.key for r in slack_server.requests()] == ["auth.test", "chat.postMessage",
                                                        "chat.delete"]  # fmt: skip
    assert slack_server.token not in out.output


def test_smoke_slack_reports_a_missing_channel_without_the_token(
    slack_server: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in slack_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CLEANDAY_SLACK_CHANNEL", "#nowhere")
    out = CliRunner().invoke(app, ["smoke", "slack"])
    assert out.exit_code == 1
    assert "slack post" in out.output and "channel_not_found" in out.output
    assert slack_server.token not in out.output
