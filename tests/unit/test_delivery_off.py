"""`cleanday up` says once at start which surfaces deliver nothing for want of a token."""

from __future__ import annotations

from cleanday.config import Settings
from cleanday.runtime.embedded import delivery_off


def _settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg, arg-type]


def test_each_surface_without_a_token_is_named_with_the_variable_that_turns_it_on() -> None:
    assert delivery_off(_settings()) == ("Notion (no NOTION_TOKEN) and Slack (no SLACK_BOT_TOKEN)")
    assert delivery_off(_settings(NOTION_TOKEN="n-test")) == "Slack (no SLACK_BOT_TOKEN)"
    assert delivery_off(_settings(NOTION_TOKEN="n-test", SLACK_BOT_TOKEN="xoxb-test")) == ""
