"""The machinery both fakes share: rate-limit buckets, fault rules, and running as a process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import notion_client
import pytest
from slack_sdk import WebClient

from tests.fakes.serving import Buckets, FakeProcess, Faults, RateLimit


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate_and_says_when_to_retry_in_whole_seconds() -> None:
    ticks = Ticks()
    buckets = Buckets(ticks)
    limit = RateLimit(per_second=3.0, burst=3)
    assert [buckets.take(("t",), limit) for _ in range(3)] == [None, None, None]
    assert buckets.take(("t",), limit) == 1  # a third of a second away, said as 1 s
    ticks.now += 1 / 3
    assert buckets.take(("t",), limit) is None
    assert buckets.take(("other",), limit) is None  # each key has its own bucket
    ticks.now += 10
    assert [buckets.take(("t",), limit) for _ in range(4)] == [None, None, None, 1]
    slow = RateLimit.per_minute(1)
    assert buckets.take(("m",), slow) is None
    assert buckets.take(("m",), slow) == 60
    assert buckets.take(("m",), None) is None


def test_fault_rules_match_by_pattern_and_last_for_a_count_a_time_or_until_cleared() -> None:
    ticks = Ticks()
    faults = Faults(ticks)
    once = faults.add("error", "POST /v1/pages", status=500)
    assert faults.take("POST /v1/pages/x/properties") is None
    assert faults.take("POST /v1/pages") is once
    assert faults.take("POST /v1/pages") is None

    by_path = faults.add("hang", "/v1/data_sources/*", times=2)
    assert faults.take("PATCH /v1/data_sources/abc") is by_path
    assert faults.take("POST /v1/data_sources/abc/query") is by_path
    assert faults.take("GET /v1/data_sources/abc") is None

    timed = faults.add("rate_limited", "chat.*", seconds=5, retry_after=3)
    assert faults.take("chat.postMessage") is timed and timed.retry_after == 3
    ticks.now += 5
    assert faults.take("chat.update") is None

    forever = faults.add("drop", times=None)
    assert all(faults.take(key) is forever for key in ("auth.test", "GET /v1/users/me"))
    faults.clear()
    assert faults.take("auth.test") is None
    with pytest.raises(ValueError, match="status 501"):
        faults.add("error", status=501)
    with pytest.raises(ValueError, match="fault kind"):
        faults.add("explode")  # type: ignore[arg-type]


def test_fakes_run_as_processes_take_orders_over_http_and_die_with_sigkill() -> None:
    with ThreadPoolExecutor(2) as pool:
        notion_job = pool.submit(FakeProcess, "tests.fakes.notion", ["--no-rate-limit"])
        slack_job = pool.submit(FakeProcess, "tests.fakes.slack", ["--channel", "ops"])
        notion_proc, slack_proc = notion_job.result(), slack_job.result()
    try:
        parent = notion_proc.control("POST", "/_fake/pages", {"title": "Cleanday"})["id"]
        notion = notion_client.Client(auth="ntn_test", base_url=notion_proc.url)
        db = notion.databases.create(
            parent={"type": "page_id", "page_id": parent},
            initial_data_source={"properties": {"Name": {"title": {}}}},
        )
        ds_id = db["data_sources"][0]["id"]
        notion.pages.create(
            parent={"type": "data_source_id", "data_source_id": ds_id},
            properties={"Name": {"title": [{"text": {"content": "seo_audit"}}]}},
        )
        rows = notion_proc.control("GET", f"/_fake/data_sources/{ds_id}/rows")
        assert [r["Name"] for r in rows] == ["seo_audit"]
        notion_proc.control("POST", "/_fake/faults", {"kind": "error", "status": 503})
        with pytest.raises(notion_client.APIResponseError):
            notion.pages.create(
                parent={"type": "data_source_id", "data_source_id": ds_id}, properties={}
            )
        received = notion_proc.control("GET", "/_fake/requests")
        assert [r["status"] for r in received] == [200, 200, 503]

        slack = WebClient(token="xoxb-test", base_url=slack_proc.url + "/api/")
        slack.chat_postMessage(channel="#ops", text="hello")
        messages = slack_proc.control("GET", "/_fake/channels/ops/messages")
        assert [m["text"] for m in messages] == ["hello"]

        notion_proc.kill()
        with pytest.raises(httpx.ConnectError):
            notion.users.me()
    finally:
        notion_proc.stop()
        slack_proc.stop()
