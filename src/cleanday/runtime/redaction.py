"""Exceptions from a behavior's step code, cleaned of secrets before Temporal or a log sees them."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from temporalio.exceptions import ApplicationError

from cleanday.secrets import redact_secrets

T = TypeVar("T")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def without_secrets(exc: BaseException) -> BaseException:
    """`exc` itself when no text in it or its causes holds a secret this process knows; else an
    ApplicationError of the same type name whose message is redacted and which carries no
    cause (Temporal records an exception's causes in history, a log prints them)."""
    texts = [str(e) for e in _chain(exc)]
    if all(redact_secrets(t) == t for t in texts):
        return exc
    return ApplicationError(
        redact_secrets(texts[0]),
        type=type(exc).__name__,
        non_retryable=isinstance(exc, ApplicationError) and exc.non_retryable,
    )


def redacted(value: T) -> T:
    """`value` (text, or lists, dicts and dataclasses of it) with known secrets struck out."""
    return _redact(value)  # type: ignore[no-any-return]


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _redact(getattr(value, f.name)) for f in dataclasses.fields(value)}
        )
    return value
