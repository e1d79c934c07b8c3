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


async def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse a write unless it carries the operator token; a server without one refuses all."""
    expected = settings_of(request).token
    challenge = {"WWW-Authenticate": "Bearer"}
    if not expected:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "writes are refused: this server has no operator token; set CLEANDAY_TOKEN "
            "in the service's environment and send it as 'Authorization: Bearer <token>'",
            headers=challenge,
        )
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing operator token: send 'Authorization: Bearer <CLEANDAY_TOKEN>'",
            headers=challenge,
        )
    # constant-time comparison so the token cannot be guessed byte by byte from timings
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong operator token: send the server's CLEANDAY_TOKEN as the bearer token",
            headers=challenge,
        )


Operator = Depends(require_operator)
