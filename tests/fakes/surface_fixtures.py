"""Pytest fixtures for the fake Notion and Slack: servers on free ports, and real clients.

Import what a test module uses (`from tests.fakes.surface_fixtures import notion_server`).
Each server fails the test at teardown if it received a request that did not validate,
unless the test set `server.invalid_allowed = True` (for tests that send one on purpose).
The servers enforce the providers' rate limits by default; a test that makes many quick
calls without pacing loosens them (`notion_server.set_rate_limit(None)`,
`slack_server.set_rate_limits(None, tiers=False)`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import notion_client
import pytest
from slack_sdk import WebClient

from tests.fakes.notion import NotionServer
from tests.fakes.serving import FakeService
from tests.fakes.slack import SlackServer

MakeNotion = Callable[..., NotionServer]
MakeSlack = Callable[..., SlackServer]


def _served(started: list[FakeService]) -> None:
    failures = []
    for server in started:
        server.stop()
        if not server.invalid_allowed and server.invalid_requests():
            try:
                server.assert_all_valid()
            except AssertionError as exc:
                failures.append(f"{type(server).__name__}: {exc}")
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@pytest.fixture
def make_notion_server() -> Iterator[MakeNotion]:
    """Start a fake Notion with NotionServer's keyword arguments (clock, rate_limit, ...)."""
    started: list[FakeService] = []

    def make(**kwargs: Any) -> NotionServer:
        server = NotionServer(**kwargs)
        server.start()
        started.append(server)
        return server

    yield make
    _served(started)


@pytest.fixture
def make_slack_server() -> Iterator[MakeSlack]:
    """Start a fake Slack with SlackServer's keyword arguments (channels, clock, ...)."""
    started: list[FakeService] = []

    def make(**kwargs: Any) -> SlackServer:
        server = SlackServer(**kwargs)
        server.start()
        started.append(server)
        return server

    yield make
    _served(started)


@pytest.fixture(scope="module")
def _shared_notion() -> Iterator[NotionServer]:
    server = NotionServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _shared_slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    yield server
    server.stop()


Served = TypeVar("Served", bound=FakeService)


def _checked(server: Served) -> Iterator[Served]:
    server.reset()
    yield server
    if not server.invalid_allowed and server.invalid_requests():
        try:
            server.assert_all_valid()
        except AssertionError as exc:
            pytest.fail(f"{type(server).__name__}: {exc}", pytrace=False)


@pytest.fixture
def notion_server(_shared_notion: NotionServer) -> Iterator[NotionServer]:
    """A fake Notion, emptied for this test (token `ntn_test`, 3 requests/s per token, real
    clock); one server per test module, since starting one costs a tenth of a second."""
    yield from _checked(_shared_notion)


@pytest.fixture
def slack_server(_shared_slack: SlackServer) -> Iterator[SlackServer]:
    """A fake Slack, emptied for this test (token `xoxb-test`, channels #general and #alerts,
    Slack's rate limits); one server per test module."""
    yield from _checked(_shared_slack)


@pytest.fixture
def notion(notion_server: NotionServer) -> Iterator[notion_client.Client]:
    """The real notion-client pointed at `notion_server`, with its default retries."""
    client = notion_client.Client(auth=notion_server.token, base_url=notion_server.url)
    yield client
    client.close()


@pytest.fixture
def slack(slack_server: SlackServer) -> WebClient:
    """The real slack-sdk WebClient pointed at `slack_server` (no retry handlers added)."""
    return WebClient(token=slack_server.token, base_url=slack_server.api_url)
