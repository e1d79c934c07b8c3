"""Act permits: asked for at the moment of acting, so a demotion mid-run is honoured."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import ValidationError

from cleanday.ledger import LedgerService, Permit
from cleanday.service.deps import Operator, get_service
from cleanday.service.fastpath import Answer, FastPath
from cleanday.service.schemas import PermitIn

PERMITS_PATH = "/api/v1/permits"
router = APIRouter(prefix=PERMITS_PATH, tags=["permits"])
Service = Annotated[LedgerService, Depends(get_service)]


@router.post(
    "",
    dependencies=[Operator],
    summary="Ask for an act permit (200 granted, 403 denied with the reason)",
    responses={403: {"description": "denied; `detail` says why"}},
)
def request_permit(body: PermitIn, service: Service) -> Permit:
    return service.request_permit(body.behavior, body.run_id, item_id=body.item_id)


class PermitFastPath(FastPath):
    """`POST /api/v1/permits` with the right token, answered as the route answers it (200 with
    the permit, 403 with the reason) without FastAPI's machinery: a worker asks once a run."""

    method, writes = "POST", True

    def matches(self, path: str) -> bool:
        return path == PERMITS_PATH

    async def answer(self, state: Any, match: Any, body: bytes) -> Answer | None:
        try:
            ask = PermitIn.model_validate_json(body)
        except ValidationError:
            return None  # the route's 422 names the field
        service: LedgerService = state.service
        permit = await asyncio.to_thread(
            service.request_permit, ask.behavior, ask.run_id, item_id=ask.item_id
        )
        return 200, permit.model_dump_json().encode()
