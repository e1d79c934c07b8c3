"""Act permits: asked for at the moment of acting, so a demotion mid-run is honoured."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from cleanday.ledger import LedgerService, Permit
from cleanday.service.deps import Operator, get_service
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
