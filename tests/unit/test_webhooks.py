from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cleanday.errors import WebhookRejected
from cleanday.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MemorySeenSignatures,
    sign,
    signature_for,
    verify,
    verify_for,
)
from cleanday.workorder import WebhookTrigger

SECRET = b"test-canary-3f9a"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
BODY = b'{"event_id": "evt-1", "kind": "push"}'


def rejected(**kw: object) -> WebhookRejected:
    args: dict[str, object] = {
        "secret": SECRET,
        "headers": sign(SECRET, BODY, TS),
        "body": BODY,
        "now": NOW,
        "seen": MemorySeenSignatures(),
    }
    args.update(kw)
    with pytest.raises(WebhookRejected) as info:
        verify(**args)  # type: ignore[arg-type]
    return info.value


def test_a_good_signature_is_accepted() -> None:
    seen = MemorySeenSignatures()
    ok = verify(SECRET, sign(SECRET, BODY, TS), BODY, NOW, seen)
    assert ok.timestamp == TS
    assert len(seen) == 1


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET, f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature_for(SECRET, BODY, TS) == expected
    assert sign(SECRET, BODY, TS)[SIGNATURE_HEADER] == f"sha256={expected}"


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in sign(SECRET, BODY, TS).items()}
    verify(SECRET, headers, BODY, NOW, MemorySeenSignatures())


def test_a_tampered_body_is_401() -> None:
    err = rejected(body=BODY.replace(b"push", b"pull"))
    assert err.status == 401 and "does not match" in err.reason


def test_the_wrong_secret_is_401() -> None:
    assert rejected(secret=b"another-test-secret").status == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {TIMESTAMP_HEADER: str(TS)},
        {SIGNATURE_HEADER: "sha256=" + "0" * 64},
        {TIMESTAMP_HEADER: "yesterday", SIGNATURE_HEADER: "sha256=" + "0" * 64},
        {TIMESTAMP_HEADER: str(TS), SIGNATURE_HEADER: signature_for(SECRET, BODY, TS)},
    ],
)
def test_missing_or_malformed_headers_are_401(headers: dict[str, str]) -> None:
    assert rejected(headers=headers).status == 401


def test_a_stale_timestamp_is_refused_even_with_a_valid_signature() -> None:
    old = TS - 301
    err = rejected(headers=sign(SECRET, BODY, old))
    assert err.status == 401 and "301 s old" in err.reason and "300 s" in err.reason


def test_a_timestamp_inside_the_tolerance_is_accepted_both_ways() -> None:
    for ts in (TS - 300, TS + 300):
        verify(SECRET, sign(SECRET, BODY, ts), BODY, NOW, MemorySeenSignatures())


def test_a_timestamp_from_the_future_is_refused() -> None:
    err = rejected(headers=sign(SECRET, BODY, TS + 3600))
    assert err.status == 401 and "in the future" in err.reason


def test_a_replayed_signature_is_409() -> None:
    seen = MemorySeenSignatures()
    headers = sign(SECRET, BODY, TS)
    verify(SECRET, headers, BODY, NOW, seen)
    err = rejected(headers=headers, seen=seen, now=NOW + timedelta(seconds=5))
    assert err.status == 409 and "replay" in err.reason


def test_a_forged_request_does_not_poison_the_replay_store() -> None:
    seen = MemorySeenSignatures()
    rejected(body=b"forged", seen=seen)
    assert len(seen) == 0


def test_an_oversized_body_is_413_before_anything_else() -> None:
    err = rejected(body=b"x" * 101, headers={}, max_body=100)
    assert err.status == 413 and "101 bytes" in err.reason


def test_the_replay_store_forgets_signatures_older_than_it_needs() -> None:
    seen = MemorySeenSignatures(keep_s=600)
    assert seen.add_if_new("a", 1000)
    assert not seen.add_if_new("a", 1000)
    assert seen.add_if_new("b", 1000 + 601)
    assert len(seen) == 1  # "a" could no longer verify, so it was dropped


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(SECRET, sign(SECRET, BODY, TS), BODY, datetime(2026, 11, 21), MemorySeenSignatures())


def test_verify_for_takes_the_limits_from_the_work_orders_trigger() -> None:
    trigger = WebhookTrigger(
        type="webhook", secret_ref="env:X", max_body_bytes=10, tolerance_seconds=60
    )
    with pytest.raises(WebhookRejected) as big:
        verify_for(trigger, SECRET, sign(SECRET, BODY, TS), BODY, NOW, MemorySeenSignatures())
    assert big.value.status == 413
    small = b"{}"
    with pytest.raises(WebhookRejected) as stale:
        verify_for(
            trigger, SECRET, sign(SECRET, small, TS - 61), small, NOW, MemorySeenSignatures()
        )
    assert stale.value.status == 401
    assert (
        verify_for(
            trigger, SECRET, sign(SECRET, small, TS - 59), small, NOW, MemorySeenSignatures()
        ).timestamp
        == TS - 59
    )
