"""The Pane of Glass over HTTP, on SQLite and PostgreSQL: what each page shows, sign-in and its
safety, and that every action is the API's own request."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from cleanday.config import Settings
from cleanday.domain import Decision, Tier
from cleanday.ledger import LedgerService, RunReport
from cleanday.models import T_PENDING
from cleanday.pane import sessions
from cleanday.registration import parse_work_order
from cleanday.router.tables import KeySpend, RoutingBinding
from cleanday.service import create_app

TOKEN = "pane-token-5b2e"
REMOTE = ("203.0.113.7", 51000)  # a client that is not on loopback
SUNDAY = datetime(2026, 11, 8, 10, 0, tzinfo=UTC)  # Sunday morning
REGISTERED_AT = SUNDAY - timedelta(days=14)


async def noop_step(ctx: Any) -> Any:
    raise NotImplementedError


def work_order(name: str, trigger: str = '{type: cron, cron: "0 7 * * *", timezone: UTC}') -> str:
    return f"""\
name: {name}
description: test behavior {name}
trigger: {trigger}
reports: what it did
key: {{ref: "env:KEY_{name.upper()}", cap_usd: 5}}
preset: {{name: {name}, model: local/echo}}
entry: "tests.e2e.test_pane:noop_step"
"""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(REGISTERED_AT)


@pytest.fixture
def service(engine: Any, clock: Clock) -> LedgerService:
    return LedgerService(engine, clock=clock)


def settings(**over: Any) -> Settings:
    return Settings(CLEANDAY_TOKEN=TOKEN, CLEANDAY_SCHEDULER=False, **over)


@pytest.fixture
def app(service: LedgerService) -> FastAPI:
    return create_app(settings(), service)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def register(service: LedgerService, name: str, tier: Tier = Tier.A, **kw: Any) -> None:
    text = work_order(name, **kw)
    service.register_work_order(parse_work_order(text, name), name, text=text)
    if tier is not Tier.A:
        service.override(name, "start here", kind="forced_tier", tier=tier)


def report(service: LedgerService, name: str, run_id: str, at: datetime, **over: Any) -> None:
    body: dict[str, Any] = {
        "behavior": name,
        "run_id": run_id,
        "workflow_id": f"wf-{run_id}",
        "started_at": at - timedelta(minutes=1),
        "finished_at": at,
        "outcome": "succeeded",
        "gates": [{"name": "budget", "passed": True, "reason": ""}],
        "cost_usd": 0.01,
    }
    service.report_run(RunReport.model_validate(body | over))


def clean_week(service: LedgerService, clock: Clock, name: str, days: int = 8) -> None:
    """A clean run on each of `days` days, each day closed: a candidate at A or B."""
    for i in range(days):
        at = REGISTERED_AT + timedelta(days=i, hours=2)
        clock.now = at
        report(service, name, f"{name}-{i}", at)
        clock.now = at + timedelta(days=1)
    clock.now = SUNDAY


def sign_in(client: TestClient) -> str:
    """Sign in through the form; returns the CSRF token the next page carries."""
    r = client.post("/signin", data={"token": TOKEN, "next": "/"})
    assert r.status_code == 200 and "Signed in" in r.text, r.text
    return csrf_of(r.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


# -- what the pages show ----------------------------------------------------------------------


def test_the_overview_escapes_a_failure_reason_and_marks_quarantined_rows_and_candidates(
    client: TestClient, service: LedgerService, clock: Clock
) -> None:
    register(service, "alpha")
    register(service, "beta")
    for i in range(3):  # three failures at A within a week quarantine alpha
        at = REGISTERED_AT + timedelta(days=i, hours=1)
        clock.now = at
        gates = [{"name": "sensitive_info", "passed": False, "reason": "<script>alert(1)</script>"}]
        report(service, "alpha", f"a-{i}", at, outcome="blocked", gates=gates)
    clean_week(service, clock, "beta")
    html = client.get("/").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'class="row-quarantined"' in html
    assert "candidate for B" in html  # beta
    assert re.search(r"Quarantined <span class=\"count\">1</span>", html)


def test_an_empty_ledger_says_so_in_every_section(client: TestClient) -> None:
    html = client.get("/").text
    assert "No behaviors registered yet" in html
    assert "No proposals wait for you." in html
    assert "No staged items wait for release." in html
    assert "No behavior is quarantined." in html
    assert "Nothing waits for you" in html


def test_a_row_shows_every_reason_of_the_last_failure_its_spend_last_run_and_next_run(
    client: TestClient, service: LedgerService, clock: Clock, engine: Any
) -> None:
    register(service, "alpha", Tier.C)
    clock.now = REGISTERED_AT + timedelta(hours=3)
    gates = [
        {"name": "sensitive_info", "passed": False, "reason": "email in output"},
        {"name": "schema", "passed": False, "reason": "tag 'x' not allowed"},
    ]
    report(service, "alpha", "r-1", clock.now, outcome="blocked", gates=gates)
    with Session(engine) as s:
        at = clock.now
        s.add(RoutingBinding(behavior="alpha", key_ref="env:KEY_ALPHA", cap_usd=5,
                             cadence="month", bound_at=at, updated_at=at))  # fmt: skip
        s.add(KeySpend(behavior="alpha", at=at, estimate_usd=1.0, cost_usd=1.25,
                       status="settled"))  # fmt: skip
        s.commit()
    html = client.get("/").text
    assert (
        "sensitive_info: email in output" in html and "schema: tag &#39;x&#39; not allowed" in html
    )
    assert "$1.25 / $5.00" in html
    assert 'class="outcome outcome-blocked"' in html
    # the next firing of "0 7 * * *" after 12:00 is tomorrow 07:00 UTC, from the trigger
    tomorrow = (clock.now + timedelta(days=1)).replace(hour=7, minute=0).isoformat()
    assert f'datetime="{tomorrow}"' in html


def test_filters_by_tier_and_status_hide_retired_unless_asked_and_pages_through(
    client: TestClient, service: LedgerService
) -> None:
    for i in range(7):
        register(service, f"beh_{i}", Tier.B if i % 2 else Tier.A)
    service.retire("beh_0")
    names = lambda html: re.findall(r'<a href="/behaviors/(beh_\d)">', html)  # noqa: E731
    assert "beh_0" not in names(client.get("/").text)
    assert "beh_0" in names(client.get("/?retired=1").text)
    assert names(client.get("/?status=retired").text) == ["beh_0"]
    only_b = names(client.get("/?tier=B").text)
    assert only_b == ["beh_1", "beh_3", "beh_5"]
    first = client.get("/?per=4").text
    assert names(first) == ["beh_1", "beh_2", "beh_3", "beh_4"]
    assert "page 1 of 2" in first and 'rel="next" href="/?page=2&amp;per=4"' in first
    assert names(client.get("/?per=4&page=2").text) == ["beh_5", "beh_6"]
    assert "No behavior matches these filters" in client.get("/?tier=Wings").text


def test_proposals_show_their_content_and_staged_items_wait_for_release(
    client: TestClient, service: LedgerService, clock: Clock
) -> None:
    register(service, "alpha")
    register(service, "beta", Tier.B)
    clock.now = REGISTERED_AT + timedelta(hours=1)
    payload = {"summary": "3 posts drafted", "actions": [{"kind": "publish", "target": "blog"}]}
    report(service, "alpha", "p-1", clock.now, outcome="proposed",
           items=[{"id": "p-1", "payload": payload}])  # fmt: skip
    report(service, "beta", "s-1", clock.now, outcome="staged")
    html = client.get("/").text
    assert "3 posts drafted" in html and "publish" in html and "blog" in html
    assert "s-1" in html and "No staged items wait" not in html
    # reading on loopback: the content, but no buttons before signing in
    assert ">Approve<" not in html and "Sign in to act" in html
    sign_in(client)
    html = client.get("/").text
    assert ">Approve<" in html and ">Release<" in html


def test_the_behavior_page_shows_its_streak_tier_history_runs_with_gates_and_presets(
    client: TestClient, service: LedgerService, clock: Clock
) -> None:
    register(service, "alpha")
    clean_week(service, clock, "alpha", days=8)
    html = client.get("/behaviors/alpha").text
    assert "<svg" in html and 'class="bar clean"' in html
    assert "8 clean days" in html  # the last closed day's bar, from the ladder
    assert "registered (version 1)" in html
    assert "✓ budget" in html and "/workflows/wf-alpha-7" in html  # a run links to Temporal
    assert "v1" in html and "for A" in html  # preset version 1, published for A
    assert client.get("/behaviors/nope").status_code == 404


def test_every_asset_ships_with_the_package_and_nothing_comes_from_elsewhere(
    client: TestClient, service: LedgerService
) -> None:
    register(service, "alpha")
    for path in ("/", "/behaviors/alpha", "/review", "/signin"):
        r = client.get(path)
        assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', r.text)
        assert assets and all(a.startswith("/static/pane/") for a in assets), (path, assets)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        for a in assets:
            assert client.get(a).status_code == 200
    htmx = client.get("/static/pane/htmx.min.js").text
    assert htmx.startswith("/*! htmx.org ") and "BSD-0-Clause" in htmx.splitlines()[0]


# -- sign-in and safety -------------------------------------------------------------------------


def test_reading_off_loopback_needs_sign_in_and_loopback_reads_can_be_closed(
    service: LedgerService,
) -> None:
    register(service, "alpha")
    with TestClient(create_app(settings(), service), client=REMOTE) as remote:
        r = remote.get("/behaviors/alpha", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Fbehaviors%2Falpha"
        assert "Operator token" in remote.get("/").text  # followed to the sign-in page
        sign_in(remote)
        assert "test behavior alpha" in remote.get("/behaviors/alpha").text
    closed = create_app(settings(CLEANDAY_PANE_LOOPBACK_READS=False), service)
    with TestClient(closed) as local:
        assert local.get("/", follow_redirects=False).status_code == 303


def test_signing_in_gives_an_httponly_strict_session_cookie_and_a_wrong_token_none(
    client: TestClient,
) -> None:
    wrong = client.post("/signin", data={"token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not this server" in wrong.text
    assert sessions.COOKIE not in client.cookies
    r = client.post("/signin", data={"token": TOKEN, "next": "//evil.example/"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/"  # never elsewhere
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(sessions.COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie


def test_an_action_without_a_session_or_a_matching_csrf_token_is_refused_and_writes_nothing(
    client: TestClient, service: LedgerService
) -> None:
    register(service, "alpha")
    r = client.post("/behaviors/alpha/pause", data={"next": "/"}, follow_redirects=False)
    assert r.status_code == 401 and "Sign in to act" in r.text
    sign_in(client)
    r = client.post("/behaviors/alpha/pause", data={"csrf": "0" * 64}, follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    theirs = {"origin": "http://evil.example", "csrf": csrf_of(client.get("/").text)}
    r = client.post("/behaviors/alpha/pause", data={"csrf": theirs["csrf"]},
                    headers={"origin": theirs["origin"]}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert service.state("alpha").status.value == "active"


def test_a_pane_approval_is_the_apis_approval_and_says_what_it_did(
    client: TestClient, service: LedgerService, clock: Clock
) -> None:
    register(service, "alpha")
    clock.now = REGISTERED_AT + timedelta(hours=1)
    report(service, "alpha", "p-1", clock.now, outcome="proposed")
    report(service, "alpha", "p-2", clock.now + timedelta(minutes=1), outcome="proposed")
    csrf = sign_in(client)
    r = client.post("/behaviors/alpha/approve", data={"csrf": csrf, "items": "p-1", "next": "/"})
    assert "Approved p-1 of alpha" in r.text
    assert [i.status for i in service.items("alpha")] == ["approved", "pending"]
    assert service.item("alpha", "p-1").decided_by == "operator"
    r = client.post("/behaviors/alpha/reject", data={"csrf": csrf, "items": "p-2", "reason": ""})
    assert "reason" in r.text  # the API's own refusal (422), shown on the page
    assert service.item("alpha", "p-2").status == "pending"


def test_a_session_signed_out_on_one_instance_is_refused_by_another(
    service: LedgerService,
) -> None:
    register(service, "alpha")
    one, two = create_app(settings(), service), create_app(settings(), service)
    with TestClient(one) as a, TestClient(two) as b:
        csrf = sign_in(a)
        b.cookies.set(sessions.COOKIE, a.cookies[sessions.COOKIE])
        assert "Signed in" in b.get("/").text  # the other instance knows the session
        a.post("/signout", data={"csrf": csrf})
        r = b.post("/behaviors/alpha/pause", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 401 and "Sign in to act" in r.text
    assert service.state("alpha").status.value == "active"


def test_a_session_signed_with_another_token_or_expired_is_no_session(clock: Clock) -> None:
    signer = sessions.Signer(TOKEN)
    session, cookie = signer.issue(clock.now, timedelta(hours=1))
    assert signer.session(cookie, clock.now) == session
    assert sessions.Signer("another-token").session(cookie, clock.now) is None
    assert signer.session(cookie, clock.now + timedelta(hours=2)) is None
    forged = cookie.rsplit(".", 1)[0].replace(cookie.split(".")[1], "9999999999") + ".00"
    assert signer.session(forged, clock.now) is None
    assert signer.csrf_ok(session, signer.csrf(session))
    other, _ = signer.issue(clock.now, timedelta(hours=1))
    assert not signer.csrf_ok(other, signer.csrf(session))


# -- the review ---------------------------------------------------------------------------------


def test_promote_is_offered_on_sunday_only_and_the_close_promotes(
    client: TestClient, service: LedgerService, clock: Clock
) -> None:
    register(service, "alpha")
    clean_week(service, clock, "alpha")
    clock.now = SUNDAY - timedelta(days=1)  # Saturday: who would be in the review, no buttons
    sign_in(client)
    saturday = client.get("/review").text
    assert "alpha" in saturday and ">Promote<" not in saturday
    assert "Decisions are taken on Sunday" in saturday
    clock.now = SUNDAY
    csrf = sign_in(client)  # the session of Saturday has expired
    page = client.get("/review").text
    assert ">Promote<" in page
    r = client.post("/reviews/2026-11-08/decide",
                    data={"csrf": csrf, "behavior": "alpha", "decision": "promote",
                          "next": "/review"})  # fmt: skip
    assert "Promote recorded for alpha" in r.text and "by operator (pane)" in r.text
    (recorded,) = service.decisions(SUNDAY.date())
    assert (recorded.by, recorded.door) == ("operator", "pane")
    clock.now = SUNDAY + timedelta(days=1, minutes=1)
    assert service.close_sunday(SUNDAY.date()).promoted == ["alpha"]
    html = client.get("/review?week=2026-11-08").text
    assert "This review has closed: promoted alpha" in html
    assert service.state("alpha").tier is Tier.B


def test_a_decision_shows_who_made_it(
    client: TestClient, service: LedgerService, clock: Clock
) -> None:
    register(service, "alpha")
    clean_week(service, clock, "alpha")
    service.decide("alpha", SUNDAY.date(), Decision.HOLD, by="ana", door="cli")
    html = client.get("/").text
    assert "decided-hold" in html and "by ana (cli)" in html


def test_pending_items_of_a_retired_behavior_wait_for_nothing(
    client: TestClient, service: LedgerService, clock: Clock, engine: Any
) -> None:
    register(service, "alpha")
    clock.now = REGISTERED_AT + timedelta(hours=1)
    report(service, "alpha", "p-1", clock.now, outcome="proposed")
    service.retire("alpha")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T_PENDING)).scalar() == 1
    assert "No proposals wait for you." in client.get("/").text
