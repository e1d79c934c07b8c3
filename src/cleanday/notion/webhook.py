"""Notion's webhook protocol: the one-time verification token, the events' signatures, and which
events can carry a decision of the Sunday review.

Notion posts `{"verification_token": ...}` once when the operator subscribes; the operator
pastes that token into Notion's form to verify the subscription, and from then on every event
carries `X-Notion-Signature: sha256=<HMAC-SHA256 of the raw body, keyed with the token>`.
An event says only that a page changed, never how: the review read asks Notion what changed.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

SIGNATURE_HEADER = "X-Notion-Signature"
# a page of a data source was edited (the operator set a Decision) or added
READ_EVENTS = frozenset({"page.properties_updated", "page.created"})


def verification_token(body: Any) -> str | None:
    """The token of a verification request, None for an event."""
    token = body.get("verification_token") if isinstance(body, dict) else None
    return token if isinstance(token, str) and token else None


def signature(token: str, body: bytes) -> str:
    """The `X-Notion-Signature` of `body` under `token`."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def signature_refusal(token: str | None, presented: str | None, body: bytes) -> str | None:
    """Why an event with the header `presented` is refused, or None when `token` signed it."""
    if token is None:
        return (
            "no verification token is kept yet: subscribe in Notion's integration settings "
            "(Webhooks) with this URL, so that Notion sends one"
        )
    if presented is None:
        return f"missing {SIGNATURE_HEADER} header: events must be signed by Notion"
    # constant-time comparison so the signature cannot be guessed byte by byte from timings
    if not hmac.compare_digest(presented.encode(), signature(token, body).encode()):
        return (
            f"wrong {SIGNATURE_HEADER}: not signed with the kept verification token (a new "
            "subscription? `cleanday notion webhook-token --forget`, then resend its token)"
        )
    return None


def wants_read(event: Any) -> bool:
    """Whether `event` may carry a decision: a page edit or creation by a person (cleanday's own
    writes, by its integration's bot, carry none; an event naming no author is read anyway)."""
    if not isinstance(event, dict) or event.get("type") not in READ_EVENTS:
        return False
    authors = event.get("authors")
    if not isinstance(authors, list) or not authors:
        return True
    return any(not isinstance(a, dict) or a.get("type") != "bot" for a in authors)
