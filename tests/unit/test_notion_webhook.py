"""Notion's webhook protocol, without I/O: the verification request, the signature, and which
events can carry a decision."""

from __future__ import annotations

import hashlib
import hmac

from cleanday.notion.webhook import signature, signature_refusal, verification_token, wants_read

TOKEN = "secret_abc"
BODY = b'{"type":"page.properties_updated"}'


def test_the_signature_is_sha256_hmac_of_the_raw_body_keyed_with_the_token() -> None:
    expected = hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature(TOKEN, BODY) == f"sha256={expected}"
    assert signature_refusal(TOKEN, f"sha256={expected}", BODY) is None


def test_an_event_is_refused_before_a_token_is_kept_unsigned_or_signed_otherwise() -> None:
    good = signature(TOKEN, BODY)
    assert "no verification token" in (signature_refusal(None, good, BODY) or "")
    assert "missing X-Notion-Signature" in (signature_refusal(TOKEN, None, BODY) or "")
    assert "wrong" in (signature_refusal(TOKEN, good, BODY + b" ") or "")
    assert "wrong" in (signature_refusal(TOKEN, good.removeprefix("sha256="), BODY) or "")


def test_only_a_body_with_a_token_string_is_a_verification_request() -> None:
    assert verification_token({"verification_token": TOKEN}) == TOKEN
    assert verification_token({"type": "page.created"}) is None
    assert verification_token({"verification_token": ""}) is None
    assert verification_token([TOKEN]) is None


def test_a_page_edit_or_creation_by_a_person_may_carry_a_decision_a_bots_does_not() -> None:
    person, bot = {"id": "u1", "type": "person"}, {"id": "b1", "type": "bot"}
    assert wants_read({"type": "page.properties_updated", "authors": [person]})
    assert wants_read({"type": "page.created", "authors": [bot, person]})  # aggregated
    assert wants_read({"type": "page.properties_updated"})  # no authors named: read anyway
    assert not wants_read({"type": "page.properties_updated", "authors": [bot]})
    assert not wants_read({"type": "page.content_updated", "authors": [person]})
    assert not wants_read({"type": "comment.created", "authors": [person]})
