"""Which HTTP status answers each cleanday error: one table, for the routes and the fast paths."""

from __future__ import annotations

from typing import Any

from starlette import status

from cleanday.errors import (
    BehaviorRetired,
    CleandayError,
    ConfigError,
    DecisionError,
    InfrastructureError,
    LedgerIntegrityError,
    NotRunnable,
    OutOfRange,
    OverrideError,
    PermitDenied,
    RegistrationError,
    RequestTooLarge,
    RunConflict,
    UnknownBehaviorError,
    UnknownItemError,
    WebhookRejected,
    WorkOrderError,
)

# most specific first: the first isinstance match decides the status
_STATUS: tuple[tuple[type[CleandayError], int], ...] = (
    (UnknownBehaviorError, status.HTTP_404_NOT_FOUND),
    (UnknownItemError, status.HTTP_404_NOT_FOUND),
    (PermitDenied, status.HTTP_403_FORBIDDEN),
    (RequestTooLarge, status.HTTP_413_CONTENT_TOO_LARGE),
    (WorkOrderError, 422),
    (OverrideError, 422),
    (OutOfRange, 422),
    (RegistrationError, status.HTTP_409_CONFLICT),
    (BehaviorRetired, status.HTTP_409_CONFLICT),
    (DecisionError, status.HTTP_409_CONFLICT),
    (RunConflict, status.HTTP_409_CONFLICT),
    (LedgerIntegrityError, status.HTTP_409_CONFLICT),
    (NotRunnable, status.HTTP_409_CONFLICT),
    (InfrastructureError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ConfigError, status.HTTP_500_INTERNAL_SERVER_ERROR),
)


def status_for(exc: CleandayError) -> int:
    """The status to answer `exc` with; its message is the answer's `detail`."""
    if isinstance(exc, WebhookRejected):
        return exc.status
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return status.HTTP_400_BAD_REQUEST


def error_body(exc: CleandayError) -> dict[str, Any]:
    """The JSON answer of `exc`: its message as `detail`, and its type as `error`, so that a
    client can tell a retired behavior (`BehaviorRetired`) from another conflict; a
    `RunConflict` also lists the fields that differ (`differ`)."""
    body: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    if isinstance(exc, RunConflict):
        body["differ"] = list(exc.fields)
    return body
