"""A ledger service with the webhook route, for `uvicorn --factory` in a subprocess: one
webhook behavior (`hook_notes`, 4 KiB body limit) registered in the SQLite ledger of
CLEANDAY_DATA_DIR, and runs "started" by a stand-in for Temporal."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from cleanday.config import Settings
from cleanday.registration import parse_work_order
from cleanday.service import build_service, create_app
from cleanday.service.routes import hooks

WORK_ORDER = """\
name: hook_notes
description: notes from a webhook
trigger: {type: webhook, secret_ref: "env:HOOK_SECRET_NOTES", max_body_bytes: 4096}
reports: the note it kept
key: {ref: "env:KEY_HOOK_NOTES", cap_usd: 5}
preset: {name: hook_notes, model: local/echo}
entry: "tests.e2e.test_api:noop_step"
"""


async def _started(behavior: str, input: dict[str, Any], workflow_id: str) -> str:
    return workflow_id


def app() -> FastAPI:
    settings = Settings(CLEANDAY_SCHEDULER=False)
    service = build_service(settings)
    service.register_work_order(parse_work_order(WORK_ORDER), "hook_notes.yaml", WORK_ORDER)
    api = create_app(settings, service)
    api.include_router(hooks.router)
    api.state.run_starter = _started
    return api
