"""Webhook signatures: HMAC-SHA256 over `timestamp + "." + body`, checked before a run starts.

Senders sign with `sign(secret, body, timestamp)` and send two headers:

    X-Cleanday-Timestamp: <unix seconds>
    X-Cleanday-Signature: sha256=<hex digest>

Receivers call `verify(secret, headers, body, now, seen)` (or `verify_for(trigger, ...)` to take
the limits from a Work Order's webhook trigger); it returns the verified
`Verified(timestamp, signature)` or raises `cleanday.errors.WebhookRejected` whose `.status` is
the HTTP status to answer with:
- 413 the body is larger than `max_body`;
- 401 the signature header is missing, malformed or wrong; the timestamp header is missing or
  not a number;
- 401 the timestamp is more than `tolerance_s` away from `now` (stale or from the future);
- 409 this signature was accepted before (a replay), when a `seen` store is given.
Order matters: nothing is remembered in `seen` until every other check passed, so a forged
request cannot poison the replay store. `SeenSignatures` is a protocol; `MemorySeenSignatures`
keeps them in memory. The service passes no `seen`: it records a verified delivery and its
signature in one row of the ledger database (`cleanday.webhook_inbox`), which refuses the replay.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cleanday.errors import WebhookRejected
from cleanday.workorder import WebhookTrigger

TIMESTAMP_HEADER = "X-Cleanday-Timestamp"
SIGNATURE_HEADER = "X-Cleanday-Signature"
SCHEME = "sha256="
DEFAULT_TOLERANCE_S = 300
DEFAULT_MAX_BODY = 1_048_576


class SeenSignatures(Protocol):
    """Signatures already accepted, kept at least as long as the timestamp tolerance."""

    def add_if_new(self, signature: str, timestamp: int) -> bool:
        """Record `signature`; False when it was already recorded (a replay). Atomic."""
        ...


class MemorySeenSignatures:
    """In-process replay store; forgets signatures older than `keep_s` as it goes."""

    def __init__(self, keep_s: int = 2 * DEFAULT_TOLERANCE_S) -> None:
        self._keep_s = keep_s
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def add_if_new(self, signature: str, timestamp: int) -> bool:
        with self._lock:
            if signature in self._seen:
                return False
            # A signature older than the tolerance can no longer verify, so it is safe to forget.
            horizon = timestamp - self._keep_s
            for old in [s for s, ts in self._seen.items() if ts < horizon]:
                del self._seen[old]
            self._seen[signature] = timestamp
            return True

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True)
class Verified:
    timestamp: int
    signature: str


def signature_for(secret: bytes, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `timestamp + "." + body`."""
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers a sender attaches to `body` sent at `timestamp` (unix seconds)."""
    return {
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: SCHEME + signature_for(secret, body, timestamp),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # HTTP header names are case-insensitive; plain dicts and Starlette headers both work here.
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for k, v in headers.items():
        if k.lower() == lower:
            return v
    return None


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    seen: SeenSignatures | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    max_body: int = DEFAULT_MAX_BODY,
) -> Verified:
    """Accept a signed webhook or raise WebhookRejected; see the module docstring."""
    if now.tzinfo is None:
        raise ValueError("verify: 'now' must be timezone-aware")
    if not secret:
        raise WebhookRejected(401, "webhook secret is empty: set the behavior's secret_ref")
    if len(body) > max_body:
        raise WebhookRejected(413, f"body is {len(body)} bytes; the limit is {max_body} bytes")
    raw_sig = _header(headers, SIGNATURE_HEADER)
    if not raw_sig:
        raise WebhookRejected(401, f"missing {SIGNATURE_HEADER} header")
    raw_ts = _header(headers, TIMESTAMP_HEADER)
    if not raw_ts:
        raise WebhookRejected(401, f"missing {TIMESTAMP_HEADER} header")
    try:
        timestamp = int(raw_ts.strip())
    except ValueError:
        raise WebhookRejected(
            401, f"{TIMESTAMP_HEADER} must be unix seconds, got {raw_ts[:40]!r}"
        ) from None
    raw_sig = raw_sig.strip()
    if not raw_sig.startswith(SCHEME):
        raise WebhookRejected(401, f"{SIGNATURE_HEADER} must be '{SCHEME}<hex digest>'")
    given = raw_sig[len(SCHEME) :].lower()
    expected = signature_for(secret, body, timestamp)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookRejected(401, "signature does not match the body and timestamp")
    skew = now.timestamp() - timestamp
    if abs(skew) > tolerance_s:
        direction = "old" if skew > 0 else "in the future"
        raise WebhookRejected(
            401,
            f"timestamp is {abs(skew):.0f} s {direction}; the tolerance is {tolerance_s} s",
        )
    if seen is not None and not seen.add_if_new(expected, timestamp):
        raise WebhookRejected(409, "this signature was already accepted: replay refused")
    return Verified(timestamp=timestamp, signature=expected)


def verify_for(
    trigger: WebhookTrigger,
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    seen: SeenSignatures,
) -> Verified:
    """`verify` with the tolerance and body limit the behavior's Work Order declares."""
    return verify(
        secret,
        headers,
        body,
        now,
        seen,
        tolerance_s=trigger.tolerance_seconds,
        max_body=trigger.max_body_bytes,
    )
