"""Secrets struck out of text and exceptions that leave the process."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from cleanday.runtime.redaction import without_secrets
from cleanday.secrets import Redactor, redact_secrets


def test_a_secret_that_contains_another_is_struck_out_whole() -> None:
    redact = Redactor()
    redact.add("abc123")
    redact.add("abc123-long-tail")
    assert redact("x abc123-long-tail y abc123") == "x [redacted] y [redacted]"


def test_every_redactor_feeds_the_process_wide_one() -> None:
    Redactor().add("unit-canary-91e0")
    assert redact_secrets("key unit-canary-91e0 leaked") == "key [redacted] leaked"


def test_an_exception_with_a_secret_only_in_its_cause_is_replaced_without_the_cause() -> None:
    Redactor().add("unit-canary-2b7c")
    exc = RuntimeError("upstream refused")
    exc.__cause__ = ValueError("token unit-canary-2b7c rejected")
    clean = without_secrets(exc)
    assert isinstance(clean, ApplicationError)
    assert clean.type == "RuntimeError" and clean.message == "upstream refused"
    assert clean.__cause__ is None and not clean.non_retryable


def test_an_exception_without_secrets_is_left_alone() -> None:
    exc = RuntimeError("the step crashed")
    assert without_secrets(exc) is exc
