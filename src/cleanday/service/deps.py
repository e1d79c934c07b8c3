"""Dependencies shared by the routes: the ledger service and the operator's bearer token."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cleanday.config import Settings
from cleanday.ledger import LedgerService

_bearer = HTTPBearer(auto_error=False, description="the operator token, CLEANDAY_TOKEN")


async def get_service(request: Request) -> LedgerService:
    # async on purpose: a sync dependency costs a thread-pool hop on every request
    service: LedgerService = request.app.state.service
    return service


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def operator_refusal(expected: str | None, presented: str | None) -> str | None:
    """Why a write presenting the bearer token `presented` is refused, or None when it is the
    operator's (`expected`, CLEANDAY_TOKEN); a server without a token refuses every write.

    The one token check: the routes' dependency and the fast paths both ask it."""
    if not expected:
        return (
            "writes are refused: this server has no operator token; set CLEANDAY_TOKEN "
            "in the service's environment and send it as 'Authorization: Bearer <token>'"
        )
    if presented is None:
        return "missing operator token: send 'Authorization: Bearer <CLEANDAY_TOKEN>'"
    # constant-time comparison so the token cannot be guessed byte by byte from timings
    if not secrets.compare_digest(presented.encode(), expected.encode()):
        return "wrong operator token: send the server's CLEANDAY_TOKEN as the bearer token"
    return None


async def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse a write unless it carries the operator token (401 saying what to send)."""
    presented = credentials.credentials if credentials is not None else None
    refusal = operator_refusal(settings_of(request).token, presented)
    if refusal is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, refusal, headers={"WWW-Authenticate": "Bearer"}
        )


Operator = Depends(require_operator)
