"""The read verbs' quick way: ask the running ledger service instead of opening the database.

`cleanday ledger`, `show`, `review` and `batch list` read; most of their time in-process is
importing what opens the ledger (SQLAlchemy, pydantic and the settings alone take most of a
second). When the ledger service of this ledger is up, the verb asks its API over HTTP with the
standard library only, and prints the same text (`cleanday.cli.render`) a tenth of a second
after it was typed. The service of this ledger is the one `CLEANDAY_URL` names, or else the one
the embedded stack of this data directory runs (`cleanday up` records where it answers).

Anything else takes the verb's typer command, which reads the database itself: another verb or
an option this module does not know (`--help`, `review --decide`), no service up, or a service
that does not answer as the ledger does (down, starting, a 5xx). So this is a shortcut, never a
second meaning: an answer it gives is the API's, a refusal the API's own message.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cleanday.cli import render
from cleanday.clock import review_sunday
from cleanday.errors import ServiceNoAnswer, ServiceRefused

# how long the quick way waits for the service before reading the database instead
TIMEOUT_S = 5.0

Get = Callable[[str], Any]


@dataclass(frozen=True)
class Read:
    """One read verb as typed: which, for which behavior, with which flags."""

    verb: str
    name: str = ""
    flags: frozenset[str] = field(default_factory=frozenset)
    week: date | None = None


# each read verb: the words that name it, its positional arguments, its flags
_SHAPES = {
    "ledger": (("ledger",), 0, {"--json", "--all"}),
    "show": (("show",), 1, {"--json"}),
    "review": (("review",), 0, {"--json"}),
    "batch list": (("batch", "list"), 1, {"--json", "--all"}),
}


def parse(argv: list[str]) -> Read | None:
    """The read verb `argv` types, or None when it is not one in a shape this module reads."""
    for verb, (words, positionals, flags) in _SHAPES.items():
        if tuple(argv[: len(words)]) != words:
            continue
        rest, week = argv[len(words) :], None
        names: list[str] = []
        seen: set[str] = set()
        while rest:
            arg = rest.pop(0)
            if arg in flags:
                seen.add(arg)
            elif verb == "review" and arg.partition("=")[0] == "--week":
                value = arg.partition("=")[2] if "=" in arg else (rest.pop(0) if rest else "")
                week = _sunday(value)
                if week is None:
                    return None  # the typer command says what is wrong with it
            elif arg.startswith("-") or len(names) == positionals:
                return None
            else:
                names.append(arg)
        if len(names) != positionals:
            return None
        return Read(verb, names[0] if names else "", frozenset(seen), week)
    return None


def _sunday(value: str) -> date | None:
    try:
        d = date.fromisoformat(value)
    except ValueError:
        return None
    return d if d.weekday() == 6 else None


def text(read: Read, get: Get, timezone: str) -> str:
    """What `read` prints, from the API `get` asks (a path -> its JSON)."""
    as_json, every = "--json" in read.flags, "--all" in read.flags
    name = quote(read.name, safe="")
    if read.verb == "ledger":
        return render.ledger(get("/api/v1/behaviors" + ("?all=true" if every else "")), as_json)
    if read.verb == "show":
        base = f"/api/v1/behaviors/{name}"
        return render.show(read.name, get(f"{base}/state"), get(f"{base}/history"), as_json)
    if read.verb == "review":
        week = read.week or review_sunday(datetime.now(UTC).astimezone(ZoneInfo(timezone)).date())
        found = get(f"/api/v1/reviews/{week.isoformat()}")
        return render.review(week.isoformat(), found["candidates"], found["decisions"], as_json)
    status = "" if every else "?status=pending"
    return render.items(read.name, get(f"/api/v1/behaviors/{name}/items{status}"), every, as_json)


@dataclass(frozen=True)
class Environment:
    """The settings the quick way needs, read as `cleanday.config.Settings` reads them (the
    environment first, then a `.env` file in the working directory, names in any case) but
    without importing it: pydantic-settings alone takes longer than this whole answer."""

    data_dir: Path
    service_url: str | None
    timezone: str
    token: str | None

    @classmethod
    def read(cls) -> Environment:
        values: dict[str, str | None] = {}
        if Path(".env").is_file():
            from dotenv import dotenv_values  # what pydantic-settings reads `.env` with

            values = {k.upper(): v for k, v in dotenv_values(".env").items()}
        values.update((k.upper(), v) for k, v in os.environ.items())
        return cls(
            data_dir=Path(values.get("CLEANDAY_DATA_DIR") or ".cleanday"),
            service_url=values.get("CLEANDAY_URL") or None,
            timezone=values.get("CLEANDAY_TIMEZONE") or "UTC",
            token=values.get("CLEANDAY_TOKEN") or None,
        )

    def ledger_url(self) -> str | None:
        """Where this ledger's service answers: `CLEANDAY_URL`, or the embedded stack's."""
        if self.service_url:
            return self.service_url
        from cleanday.runtime import stackfiles

        return stackfiles.url_of(self.data_dir, "ledger service")


def http_get(base: str, token: str | None) -> Get:
    """A `Get` for the service at `base`: the JSON of a 200; `ServiceRefused` with the ledger's own
    message for its refusals; `ServiceNoAnswer` for anything else."""
    import http.client  # here, not at the top: a verb with no service to ask never needs it

    url = urlsplit(base)
    secure = url.scheme == "https"
    kind = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    conn = kind(url.hostname or "127.0.0.1", url.port, timeout=TIMEOUT_S)
    headers = {"accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"

    def get(path: str) -> Any:
        try:
            conn.request("GET", url.path.rstrip("/") + path, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ServiceNoAnswer(str(exc)) from None
        try:
            found = json.loads(body)
        except ValueError:
            raise ServiceNoAnswer(f"{answer.status}: not JSON") from None
        if answer.status == 200:
            return found
        if 400 <= answer.status < 500 and isinstance(found, dict) and "error" in found:
            raise ServiceRefused(found.get("detail") or found["error"])  # the ledger's own refusal
        raise ServiceNoAnswer(f"{answer.status}")

    return get


def answer(argv: list[str]) -> int | None:
    """Print what the read verb `argv` asks for, from this ledger's running service, and
    return the exit code; None when the verb's typer command has to (see the module's text)."""
    read = parse(argv)
    if read is None:
        return None
    env = Environment.read()
    base = env.ledger_url()
    if base is None:
        return None
    try:
        out = text(read, http_get(base, env.token), env.timezone)
    except (ServiceNoAnswer, ZoneInfoNotFoundError, ValueError):
        return None  # the typer command reads the database, or says what is wrong
    except ServiceRefused as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 1
    print(out)
    return 0
