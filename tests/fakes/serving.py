"""What the fake Notion and Slack servers share: serving, faults on demand, rate limits, records.

A fake is an ASGI callable served by uvicorn on a free loopback port, in a thread (`ServedApp`)
or in a subprocess (`FakeProcess`, when a test must kill it). Each request is recorded
(`Received`), may meet a fault a test asked for (`Faults`), and is paced by token buckets
(`TokenBucket`) the way the provider paces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self

import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

REPO_ROOT = Path(__file__).resolve().parents[2]
# beside the checkout; CLEANDAY_SPECS_DIR for a checkout elsewhere (a git worktree)
SPECS_DIR = Path(os.environ.get("CLEANDAY_SPECS_DIR") or REPO_ROOT.parent / "shared" / "specs")

# never recorded: a test asserts on what was sent, and a record must not carry a credential
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class FakeClock:
    """A settable UTC clock for the fakes' timestamps (`clock=FakeClock(...)`)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = (start or datetime(2026, 1, 4, 10, 0, tzinfo=UTC)).astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self.now += timedelta(seconds=seconds)
            return self.now

    def set(self, at: datetime) -> None:
        with self._lock:
            self.now = at.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- rate limits -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `per_second` sustained, `burst` requests at once after a pause."""

    per_second: float
    burst: int

    @classmethod
    def per_minute(cls, count: int) -> RateLimit:
        # Slack's tiers are counts per minute with bursts allowed: a minute's worth at once
        return cls(per_second=count / 60.0, burst=count)


class TokenBucket:
    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.stamp = now

    def take(self, now: float) -> float | None:
        """Spend one token; None if allowed, else the seconds until one is available.

        A refused request spends nothing, so a client that waits Retry-After gets through.
        """
        self.tokens = min(
            float(self.limit.burst), self.tokens + (now - self.stamp) * self.limit.per_second
        )
        self.stamp = now
        # a client paced at exactly the rate must not lose to a float's last digit
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return None
        return (1.0 - self.tokens) / self.limit.per_second


class Buckets:
    """Token buckets by key (a token, a channel), created on first use."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, ...], limit: RateLimit | None) -> int | None:
        """None if the request may pass, else the Retry-After to answer, in whole seconds
        (both providers send integer seconds; notion-client and slack-sdk parse only those)."""
        if limit is None:
            return None
        with self._lock:
            now = self.monotonic()
            bucket = self._buckets.get(key)
            if bucket is None or bucket.limit != limit:
                bucket = self._buckets[key] = TokenBucket(limit, now)
            wait = bucket.take(now)
        return None if wait is None else max(1, math.ceil(wait))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


# -- faults on demand --------------------------------------------------------------------------

FaultKind = Literal["rate_limited", "error", "slow", "hang", "drop", "drop_after_write"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "rate_limited",  # 429 with Retry-After, as the provider answers it
    "error",  # a 5xx (500, 502, 503, 504) with the provider's body for it
    "slow",  # the request takes effect at once; its answer waits `delay` seconds
    "hang",  # nothing happens and nothing is answered, until the client gives up
    "drop",  # the connection is closed without an answer; nothing happens
    "drop_after_write",  # the request takes effect, then the connection closes unanswered
)


@dataclass
class Fault:
    """One fault rule. `where` is an fnmatch pattern on the request's key ("POST /v1/pages",
    "chat.postMessage"); None matches every request. `times=None` lasts until cleared."""

    kind: FaultKind
    where: str | None = None
    times: int | None = 1
    status: int = 503
    retry_after: int = 1
    delay: float = 1.0
    until: float | None = None  # a monotonic deadline, for faults given `seconds`
    hits: int = 0
    id: int = 0

    def matches(self, key: str) -> bool:
        return self.where is None or key_matches(self.where, key)


def key_matches(pattern: str, key: str) -> bool:
    """An fnmatch pattern against a request key; a pattern without a method ("/v1/pages*")
    matches the path part of "METHOD /path"."""
    if fnmatch.fnmatchcase(key, pattern):
        return True
    _, _, path = key.partition(" ")
    return " " not in pattern and bool(path) and fnmatch.fnmatchcase(path, pattern)


class Faults:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._rules: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(
        self,
        kind: FaultKind,
        where: str | None = None,
        *,
        times: int | None = 1,
        seconds: float | None = None,
        status: int = 503,
        retry_after: int = 1,
        delay: float = 1.0,
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {kind!r}: use one of {', '.join(FAULT_KINDS)}")
        if kind == "error" and status not in (500, 502, 503, 504):
            raise ValueError(f"error fault status {status}: use 500, 502, 503 or 504")
        if seconds is not None:
            times = None
        until = None if seconds is None else self.monotonic() + seconds
        with self._lock:
            fault = Fault(kind, where, times, status, retry_after, delay, until, id=next(self._ids))
            self._rules.append(fault)
        return fault

    def take(self, key: str) -> Fault | None:
        """The first live rule matching `key`, its use counted; spent rules are dropped."""
        now = self.monotonic()
        with self._lock:
            self._rules = [
                f
                for f in self._rules
                if (f.times is None or f.hits < f.times) and (f.until is None or now < f.until)
            ]
            for fault in self._rules:
                if fault.matches(key):
                    fault.hits += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)


# -- what was received -----------------------------------------------------------------------


@dataclass
class Received:
    """One request as the fake saw it, and what it answered."""

    method: str
    path: str
    key: str  # what fault patterns match: "POST /v1/pages" or "chat.postMessage"
    query: dict[str, Any]
    headers: dict[str, str]  # without credentials
    body: Any  # parsed JSON, Slack's merged arguments, or the raw text if it did not parse
    at: datetime
    authorized: bool = False
    valid: bool = True
    problem: str | None = None  # why it did not validate
    status: int | None = None
    answer: Any = None
    fault: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


def public_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key not in SECRET_HEADERS:
            out[key] = value.decode("latin-1")
    return out


class Recorder:
    def __init__(self) -> None:
        self._items: list[Received] = []
        self._lock = threading.Lock()

    def add(self, item: Received) -> Received:
        with self._lock:
            self._items.append(item)
        return item

    def all(self) -> list[Received]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# -- connection-level behaviour ---------------------------------------------------------------


class Holds:
    """Requests held open by a `hang` fault; released by a test or when the server stops."""

    def __init__(self) -> None:
        self._release = threading.Event()

    def release_all(self) -> None:
        self._release.set()

    def rearm(self) -> None:
        self._release = threading.Event()

    async def hold(self, receive: Receive, limit_s: float = 300.0) -> None:
        """Wait until released, the client disconnects, or `limit_s` passes."""
        released = self._release
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            deadline = time.monotonic() + limit_s
            while not released.is_set() and not gone.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            gone.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def drop_connection(receive: Receive, send: Send) -> None:
    """Close the client's connection without an answer.

    ASGI has no message for this, so it reaches the transport through uvicorn's own `send`
    (a bound method of its request cycle); then it waits for uvicorn to see the disconnect,
    so uvicorn neither writes a 500 nor logs a missing response.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("drop needs uvicorn's HTTP cycle (serve the fake with uvicorn)")
    transport.abort()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_wait_disconnect(receive), timeout=2.0)


# -- serving ---------------------------------------------------------------------------------


class ServedApp:
    """An ASGI app served by uvicorn in a background thread on a loopback port.

    `stop()` then `start()` serves again on the same port, so a client configured with the
    URL sees connections refused in between, as during a real outage.
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, holds: Holds | None = None
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.holds = holds
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ServedApp:
        if self._server is not None:
            return self
        if self.holds is not None:
            self.holds.rearm()
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True, name=f"fake:{self.port}")
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"fake server did not start on {self.host}:{self.port}")
            time.sleep(0.005)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        if self.holds is not None:
            self.holds.release_all()
        server.should_exit = True
        thread.join(timeout=10)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class FakeProcess:
    """A fake server in its own process, for a test that kills it (`kill()` is SIGKILL).

    It is driven through the fake's control API (`control("POST", "/_fake/faults", {...})`);
    its state dies with it.
    """

    def __init__(self, module: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"fake server {module} did not start: {line!r}")
        self.url = line.removeprefix("listening on ")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, self.url + path, json=body, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def serve_forever(app: Any, port: int) -> None:
    """The `python -m tests.fakes.<name>` entry: serve, and say where on the first line."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)

    async def run() -> None:
        await server.serve()

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.005)
        bound = server.servers[0].sockets[0].getsockname()[1]
        print(f"listening on http://127.0.0.1:{bound}", flush=True)

    async def main() -> None:
        await asyncio.gather(run(), announce())

    asyncio.run(main())


def json_body(raw: bytes) -> tuple[Any, bool]:
    """(parsed, ok): an empty body is None; text that is not JSON comes back as text."""
    if not raw:
        return None, True
    try:
        return json.loads(raw), True
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace"), False


@contextlib.contextmanager
def refused_connections(server: ServedApp) -> Iterator[None]:
    """Connections are refused inside the block; the server answers again after it."""
    server.stop()
    try:
        yield
    finally:
        server.start()


# -- the request lifecycle both fakes share ---------------------------------------------------


@dataclass
class Answer:
    """What a fake answers: a JSON body (or text, for a proxy's HTML error page)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"

    def response(self) -> Response:
        if self.media_type == "application/json":
            return JSONResponse(self.body, self.status, headers=self.headers)
        return Response(str(self.body), self.status, self.headers, media_type=self.media_type)


class FakeService:
    """The part of a fake that is not the provider: serving, faults, records, outages.

    A subclass says how a request is keyed and recorded (`record`), what a fault answers in
    the provider's words (`fault_answer`), how the provider answers (`answer`) and what its
    control API offers (`control`, under `/_fake/`).
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.faults = Faults(monotonic)
        self.buckets = Buckets(monotonic)
        self.recorder = Recorder()
        self.holds = Holds()
        self.served = ServedApp(self, holds=self.holds)
        self._timers: list[threading.Timer] = []
        # a fixture fails the test at teardown if a request did not validate, unless set
        self.invalid_allowed = False

    # -- for subclasses ----------------------------------------------------------------------

    def record(self, request: Request, raw: bytes) -> Received:
        raise NotImplementedError

    def fault_answer(self, fault: Fault) -> Answer:
        raise NotImplementedError

    async def answer(self, rec: Received, request: Request) -> Answer:
        raise NotImplementedError

    async def control(self, request: Request, body: Any) -> Answer:
        return Answer(404, {"error": f"no control endpoint {request.url.path}"})

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        raw = await request.body()
        if scope["path"].startswith("/_fake/"):
            body, _ = json_body(raw)
            try:
                answer = await self._common_control(request, body) or await self.control(
                    request, body
                )
            except (TypeError, ValueError, KeyError) as exc:
                answer = Answer(400, {"error": f"{type(exc).__name__}: {exc}"})
            await answer.response()(scope, receive, send)
            return
        rec = self.recorder.add(self.record(request, raw))
        fault = self.faults.take(rec.key)
        if fault is not None:
            rec.fault = fault.kind
        if fault is not None and fault.kind in ("hang", "drop"):
            if fault.kind == "hang":
                await self.holds.hold(receive)
            rec.answer = "(connection closed without an answer)"
            await drop_connection(receive, send)
            return
        if fault is not None and fault.kind in ("rate_limited", "error"):
            answer = self.fault_answer(fault)
        else:
            try:
                answer = await self.answer(rec, request)
            except Exception as exc:
                # a bug in the fake, not the provider's answer: make the test fail on it
                logging.getLogger(__name__).exception("fake %s crashed", type(self).__name__)
                rec.valid, rec.problem = False, f"the fake itself failed: {exc!r}"
                answer = Answer(500, {"error": rec.problem})
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.kind == "drop_after_write":
            rec.status, rec.answer = answer.status, answer.body
            rec.notes.append("answer not delivered: the connection was closed")
            await drop_connection(receive, send)
            return
        rec.status, rec.answer = answer.status, answer.body
        await answer.response()(scope, receive, send)

    async def _common_control(self, request: Request, body: Any) -> Answer | None:
        path, method = request.url.path, request.method
        if path == "/_fake/requests" and method == "GET":
            return Answer(200, [r.to_json() for r in self.recorder.all()])
        if path == "/_fake/requests" and method == "DELETE":
            self.recorder.clear()
            return Answer(200, {"cleared": True})
        if path == "/_fake/faults" and method == "POST":
            fault = self.inject(**body)
            return Answer(200, {"id": fault.id})
        if path == "/_fake/faults" and method == "DELETE":
            self.clear_faults()
            return Answer(200, {"cleared": True})
        if path == "/_fake/release" and method == "POST":
            self.release_held()
            return Answer(200, {"released": True})
        return None

    def reset(self) -> None:
        """Forget what was received, faults, held requests and rate-limit state (a subclass
        also forgets its provider state), so one server can serve many tests."""
        self.recorder.clear()
        self.faults.clear()
        self.release_held()
        self.buckets.reset()
        self.invalid_allowed = False
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if not self.served.running:
            self.served.start()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        self.served.start()
        return self

    def stop(self) -> None:
        self.served.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.served.url

    # -- faults and outages ------------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        where: str | None = None,
        *,
        times: int | None = 1,
        seconds: float | None = None,
        status: int = 503,
        retry_after: int = 1,
        delay: float = 1.0,
    ) -> Fault:
        """Answer the next `times` requests matching `where` with a fault (None: until
        `clear_faults()`; `seconds`: for that long). See FAULT_KINDS for the kinds."""
        return self.faults.add(
            kind,
            where,
            times=times,
            seconds=seconds,
            status=status,
            retry_after=retry_after,
            delay=delay,
        )

    def clear_faults(self) -> None:
        self.faults.clear()
        self.release_held()

    def release_held(self) -> None:
        """End every `hang`: the held connections are closed without an answer."""
        self.holds.release_all()
        self.holds.rearm()

    def go_down(self, seconds: float | None = None) -> None:
        """Stop listening: connections are refused until `come_up()`, or for `seconds`
        (state is kept)."""
        self.served.stop()
        if seconds is not None:
            timer = threading.Timer(seconds, self.come_up)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def come_up(self) -> None:
        self.served.start()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Connections are refused inside the block."""
        with refused_connections(self.served):
            yield

    # -- what was received -------------------------------------------------------------------

    def requests(self, where: str | None = None) -> list[Received]:
        """Every request received (control calls aside), or those whose key matches."""
        items = self.recorder.all()
        if where is None:
            return items
        return [r for r in items if key_matches(where, r.key)]

    def invalid_requests(self) -> list[Received]:
        return [r for r in self.recorder.all() if not r.valid]

    def clear_requests(self) -> None:
        self.recorder.clear()

    def assert_all_valid(self) -> None:
        bad = self.invalid_requests()
        if bad:
            lines = "\n".join(f"  {r.key}: {r.problem}" for r in bad)
            raise AssertionError(f"{len(bad)} request(s) did not validate:\n{lines}")
