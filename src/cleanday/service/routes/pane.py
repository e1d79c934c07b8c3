"""The Pane of Glass: one server-rendered table of every behavior, readable at a glance."""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from cleanday.ledger import LedgerService
from cleanday.service.deps import get_service
from cleanday.service.serialize import pane_row

router = APIRouter(tags=["pane"])
Service = Annotated[LedgerService, Depends(get_service)]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d1d1f; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .8rem; border-bottom: 1px solid #ddd; }
th { background: #f5f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.paused td, tr.retired td { color: #888; }
tr.quarantined td { background: #fff1f0; }
.tier { font-weight: 600; }
.empty { color: #888; }
"""

_COLUMNS = ("Behavior", "Tier", "Status", "Clean days", "Candidate", "Last gate failure", "Reason")


def render_pane(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in _COLUMNS)
    if rows:
        body = "\n".join(_render_row(r) for r in rows)
    else:
        body = (
            f'<tr><td class="empty" colspan="{len(_COLUMNS)}">'
            "No behaviors registered yet: run <code>cleanday register behaviors/</code>."
            "</td></tr>"
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>cleanday: Pane of Glass</title>"
        '<meta http-equiv="refresh" content="30">'
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Pane of Glass</h1>"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
        '<p><a href="/api/v1/behaviors">JSON</a> · <a href="/docs">API</a></p>'
        "</body></html>\n"
    )


def _render_row(r: dict[str, Any]) -> str:
    status = str(r["status"])
    cells = [
        escape(str(r["name"])),
        f'<span class="tier">{escape(str(r["tier"]))}</span>',
        escape(status),
        f"{r['clean_days']}",
        "yes" if r["candidate"] else "",
        escape(r["last_gate_failure"] or "—"),
        escape(r["last_failure_reason"] or ""),
    ]
    classes = ["", "", "", "num", "", "", ""]
    tds = "".join(
        f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>"
        for c, v in zip(classes, cells, strict=True)
    )
    return f'<tr class="{escape(status)}">{tds}</tr>'


@router.get("/", response_class=HTMLResponse, summary="The Pane of Glass (HTML)")
def pane(service: Service) -> HTMLResponse:
    return HTMLResponse(render_pane([pane_row(r) for r in service.list_behaviors()]))
