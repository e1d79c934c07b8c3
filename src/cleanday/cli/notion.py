"""`cleanday notion`: set up the data sources cleanday writes to; the webhook's token."""

from __future__ import annotations

from typing import Annotated

import typer

from cleanday.cli import render
from cleanday.cli.common import current_settings, friendly, open_ledger

app = typer.Typer(help="Notion: the Promotion Ledger, Gate Failures and Promotion Reviews.")


@app.command("init")
@friendly
def init(
    parent: Annotated[str, typer.Option("--parent", help="ID of the Notion page to hold them")],
) -> None:
    """Create, or adopt when present, the three data sources under the page PARENT; running
    it again changes nothing."""
    from cleanday.notion.client import sync_client
    from cleanday.notion.pacing import Pacing
    from cleanday.notion.setup import init as init_notion
    from cleanday.notion.store import NotionStore

    settings = current_settings()
    with open_ledger() as service:
        pacing = Pacing(service.engine, rate=settings.notion_rate)
        client = sync_client(settings, pacing)
        try:
            results = init_notion(client, NotionStore(service.engine), parent)
        finally:
            client.close()
    typer.echo(
        render.table(
            ["data source", "action", "data source ID"],
            [[r.title, r.action, r.data_source_id] for r in results],
        )
    )


@app.command("webhook-token")
@friendly
def webhook_token(
    forget: Annotated[
        bool, typer.Option("--forget", help="forget it, to subscribe anew with another token")
    ] = False,
) -> None:
    """Print the verification token Notion sent to POST /notion/webhook, to paste into Notion's
    Verify form (the service never logs it)."""
    from cleanday.notion.store import NotionStore

    with open_ledger() as service:
        store = NotionStore(service.engine)
        if forget:
            forgot = store.forget_verification_token()
            typer.echo("forgotten" if forgot else "no verification token was kept")
            return
        token = store.verification_token()
    if token is None:
        typer.echo(
            "error: no verification token yet: subscribe in Notion's integration settings "
            "(Webhooks) with https://<service>/notion/webhook and CLEANDAY_NOTION_WEBHOOK=1",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(token)
