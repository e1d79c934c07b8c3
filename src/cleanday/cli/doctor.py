"""`cleanday status`: a doctor for the deployment. It says what runs (the embedded stack's
processes and ports), whether the ledger database and Temporal answer, the schema revision,
whether each behavior's key and secret references resolve (never printing a secret), each
behavior's infrastructure errors today and over the last 7 days, and how deep the outbox is.
Exit 1 when something needs fixing."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cleanday.cli.common import current_settings, database_shown, friendly

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cleanday.config import Settings

app = typer.Typer()


@dataclass
class Check:
    area: str
    subject: str
    ok: bool
    detail: str
    needed: bool = True  # a failed check that is not needed is a note, not a problem


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def processes(settings: Settings) -> list[Check]:
    from cleanday.runtime import stackfiles

    found = stackfiles.running(settings.data_dir)
    if not found:
        return [
            Check(
                "processes",
                "embedded stack",
                False,
                f"not running from {settings.data_dir} (start it with `cleanday up`)",
                needed=False,
            )
        ]
    return [Check("processes", p.part, True, f"pid {p.pid}") for p in found]


def ports(settings: Settings) -> list[Check]:
    from cleanday.runtime.embedded import ports_of

    p = ports_of(settings)
    checks = []
    for role, setting in p.settings_names.items():
        port = getattr(p, role)
        up = _listening(p.host, port)
        checks.append(
            Check(
                "ports",
                role.replace("_", " "),
                up,
                f"{p.host}:{port} {'answers' if up else 'nothing listening'} ({setting})",
                needed=False,
            )
        )
    return checks


def temporal(settings: Settings) -> Check:
    host, _, port = settings.temporal_address.rpartition(":")
    up = port.isdigit() and _listening(host or "127.0.0.1", int(port))
    detail = (
        f"{settings.temporal_address} answers"
        if up
        else f"{settings.temporal_address} does not answer: start `cleanday up`, or set "
        "TEMPORAL_ADDRESS to your Temporal frontend"
    )
    return Check("temporal", "frontend", up, detail)


def ledger(settings: Settings, engine: Engine) -> list[Check]:
    from cleanday.db import shipped_head, stored_revision

    shown = database_shown(settings)
    try:
        stored = stored_revision(engine)
    except Exception as exc:  # the database itself does not answer
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return [Check("ledger", "database", False, f"{shown}: {reason}")]
    head = shipped_head()
    checks = [Check("ledger", "database", True, f"{shown} answers")]
    if stored == head:
        checks.append(Check("ledger", "schema", True, f"revision {stored} (current)"))
    else:
        checks.append(
            Check(
                "ledger",
                "schema",
                False,
                f"revision {stored or 'none'}, this cleanday needs {head}: run `cleanday migrate`",
            )
        )
    return checks


def _service(settings: Settings) -> Check:
    import httpx

    url = f"http://{settings.service_host}:{settings.service_port}/api/v1/behaviors"
    try:
        code = httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError as exc:
        return Check(
            "ledger", "service", False, f"{url}: {type(exc).__name__} (not running?)", needed=False
        )
    return Check("ledger", "service", code < 500, f"{url} answers {code}")


def references(settings: Settings, engine: Engine) -> list[Check]:
    """Each behavior's key and webhook secret references, resolved in this environment (and
    the secrets `cleanday up` generates); only whether they resolve is printed."""
    import sqlalchemy as sa

    from cleanday.errors import SecretResolutionError
    from cleanday.models import T_BEHAVIORS, T_STATES
    from cleanday.secrets import SecretResolver

    resolver = SecretResolver()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_BEHAVIORS.c.name, T_STATES.c.status, T_BEHAVIORS.c.work_order)
            .join(T_STATES, T_STATES.c.behavior == T_BEHAVIORS.c.name)
            .order_by(T_BEHAVIORS.c.name)
        ).all()
    checks = []
    for name, status, work_order in rows:
        if status == "retired":
            continue
        wo: dict[str, Any] = work_order if isinstance(work_order, dict) else json.loads(work_order)
        local_only = set((wo.get("transports") or {}).get("order") or ["local"]) <= {"local"}
        refs = [("key", wo["key"]["ref"], not local_only)]
        if (wo.get("trigger") or {}).get("type") == "webhook":
            refs.append(("webhook secret", wo["trigger"]["secret_ref"], True))
        for what, ref, needed in refs:
            try:
                resolver.resolve(ref)
                checks.append(Check("references", f"{name} {what}", True, f"{ref} resolves"))
                continue
            except SecretResolutionError as exc:
                problem = str(exc)
            generated = settings.data_dir / "webhook-secrets" / ref.removeprefix("env:")
            if ref.startswith("env:") and generated.exists():
                checks.append(
                    Check("references", f"{name} {what}", True, f"{ref}: generated in {generated}")
                )
            elif not needed:
                checks.append(
                    Check(
                        "references",
                        f"{name} {what}",
                        False,
                        f"{problem} (only the local provider is used: no key needed)",
                        needed=False,
                    )
                )
            else:
                checks.append(Check("references", f"{name} {what}", False, problem))
    if not rows:
        checks.append(Check("references", "behaviors", True, "none registered yet"))
    return checks


def outbox(engine: Engine) -> Check:
    import sqlalchemy as sa

    from cleanday.models import T_OUTBOX

    # waiting: neither delivered nor dropped by the operator (`cleanday outbox drop`)
    waiting = [T_OUTBOX.c.delivered_at.is_(None), T_OUTBOX.c.dropped_at.is_(None)]
    with engine.connect() as conn:
        depth, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(T_OUTBOX.c.created_at)).where(*waiting)
        ).one()
        failing = conn.execute(
            sa.select(T_OUTBOX.c.channel, T_OUTBOX.c.attempts, T_OUTBOX.c.last_error)
            .where(*waiting, T_OUTBOX.c.attempts > 0)
            .order_by(T_OUTBOX.c.created_at)
            .limit(1)
        ).first()
    if not depth:
        return Check("outbox", "waiting", True, "0 rows waiting")
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = datetime.now(UTC) - oldest
    detail = f"{depth} row(s) waiting, oldest since {oldest:%Y-%m-%d %H:%M} UTC ({_ago(age)})"
    if failing is not None:
        error = (failing.last_error or "").splitlines()[0][:120] if failing.last_error else ""
        detail += f"; {failing.channel} failed {failing.attempts}x: {error}"
    # a queue that drains within minutes is healthy; one older than an hour needs a look
    return Check("outbox", "waiting", age.total_seconds() < 3600, detail)


def infra_errors(settings: Settings, engine: Engine, now: datetime | None = None) -> list[Check]:
    """Per behavior with any, its infrastructure errors (runs the deployment kept from running
    their step: never the behavior's fault, never a demotion) today and over the last 7 days,
    in the ledger's time zone, with what kept them from running. A note, not a problem: the
    deployment may be fixed already."""
    from collections import Counter, defaultdict
    from datetime import timedelta

    import sqlalchemy as sa

    from cleanday import clock
    from cleanday.domain import EntryKind
    from cleanday.models import T_ENTRIES

    tz = settings.timezone
    today = clock.local_date(now or datetime.now(UTC), tz)
    today_start = clock.day_start(today, tz)
    week_start = clock.day_start(today - timedelta(days=6), tz)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_ENTRIES.c.behavior, T_ENTRIES.c.at, T_ENTRIES.c.data).where(
                T_ENTRIES.c.kind == EntryKind.INFRA_ERROR.value, T_ENTRIES.c.at >= week_start
            )
        ).all()
    week: Counter[str] = Counter()
    day: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for behavior, at, data in rows:
        week[behavior] += 1
        if (at if at.tzinfo else at.replace(tzinfo=UTC)) >= today_start:
            day[behavior] += 1
        kinds[behavior][str((data or {}).get("infra") or "unknown")] += 1
    if not week:
        return [Check("infra errors", "behaviors", True, "none in the last 7 days")]
    return [
        Check(
            "infra errors",
            name,
            False,
            f"{day[name]} today, {week[name]} in the last 7 days (since {week_start:%Y-%m-%d}, "
            f"{tz}): " + ", ".join(f"{k} {n}" for k, n in kinds[name].most_common()),
            needed=False,
        )
        for name in sorted(week)
    ]


def _ago(age: Any) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


@app.command()
@friendly
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """A doctor: processes and ports, ledger and Temporal reachable, schema revision, each
    behavior's key and secret references (never printed), infrastructure errors (today, last
    7 days), outbox depth. Exit 1 on a problem."""
    from cleanday.db import make_engine

    settings = current_settings()
    checks = processes(settings) + ports(settings)
    engine = make_engine(settings=settings)
    try:
        db = ledger(settings, engine)
        checks += db
        checks.append(_service(settings))
        checks.append(temporal(settings))
        if all(c.ok for c in db):
            checks += references(settings, engine)
            checks += infra_errors(settings, engine)
            checks.append(outbox(engine))
    finally:
        engine.dispose()
    problems = [c for c in checks if c.needed and not c.ok]
    if as_json:
        typer.echo(
            json.dumps({"ok": not problems, "checks": [asdict(c) for c in checks]}, indent=2)
        )
    else:
        width = max(len(f"{c.area}: {c.subject}") for c in checks)
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.needed else "--  ")
            typer.echo(f"{mark} {f'{c.area}: {c.subject}':<{width}}  {c.detail}")
        typer.echo(f"{len(problems)} problem(s) to fix" if problems else "no problems found")
    if problems:
        raise typer.Exit(1)
