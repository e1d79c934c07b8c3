"""HTTP client of the ledger service API, used by workers, webhooks and the embedded stack."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import aiohttp
import httpx

from cleanday.errors import (
    BehaviorRetired,
    CleandayError,
    LedgerUnavailable,
    PermitDenied,
    RunConflict,
    UnknownBehaviorError,
)

# the most requests to the ledger in flight at once (a worker has up to one per activity); the
# rest wait for a connection
MAX_CONNECTIONS = 100
# close an idle connection before the service would (uvicorn's keep-alive is 5 s), so requests
# do not go out on connections the service is about to close
KEEPALIVE_SECONDS = 4.0


@dataclass(frozen=True, slots=True)
class LedgerResponse:
    """What the ledger answered: the status and the body, read whole."""

    status_code: int
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Wire(Protocol):
    """Sends one request; raises `LedgerUnavailable` (with the reason alone) when it gets no
    answer: connection refused or lost, timeout."""

    async def send(self, method: str, path: str, body: bytes | None) -> LedgerResponse: ...

    async def aclose(self) -> None: ...


class _AiohttpWire:
    """Requests over a pool of keep-alive connections (aiohttp).

    A worker sends a ledger request or two per run. Each costs a tenth of the CPU of an httpx
    request or less: httpx's pool checks every idle connection on every request.
    """

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        self._base, self._headers = base_url, headers
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # made on first use, inside the event loop that uses it
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(self, method: str, path: str, body: bytes | None) -> LedgerResponse:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with self._open().request(
                method, self._base + path, data=body, headers=headers
            ) as response:
                return LedgerResponse(response.status, await response.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise LedgerUnavailable(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _HttpxWire:
    """Requests through an httpx transport: tests and the demo talk to the app in-process."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        transport: httpx.AsyncBaseTransport,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, transport=transport, timeout=timeout
        )

    async def send(self, method: str, path: str, body: bytes | None) -> LedgerResponse:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = await self._http.request(method, path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise LedgerUnavailable(str(exc) or type(exc).__name__) from exc
        return LedgerResponse(response.status_code, response.content)

    async def aclose(self) -> None:
        await self._http.aclose()


class LedgerClient:
    """A thin async client of docs/contracts.md section 3; one method per endpoint we need.

    `transport` lets tests talk to the FastAPI app in-process (httpx.ASGITransport); without
    it, requests go over HTTP to `base_url`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._wire: _Wire = (
            _HttpxWire(self.base_url, headers, timeout, transport)
            if transport is not None
            else _AiohttpWire(self.base_url, headers, timeout)
        )

    async def __aenter__(self) -> LedgerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def _request(self, method: str, path: str, *, json: Any = None) -> LedgerResponse:
        body = None if json is None else _dumps(json)
        try:
            response = await self._wire.send(method, path, body)
        except LedgerUnavailable as exc:  # no answer: say where we asked and what to check
            raise LedgerUnavailable(
                f"ledger service at {self.base_url} did not answer {method} {path}: {exc}; "
                "is it running (cleanday up) and is CLEANDAY_URL right?"
            ) from exc
        if response.status_code == 401:
            raise CleandayError(
                f"ledger service refused {method} {path} with 401: set CLEANDAY_TOKEN to the "
                "operator token the service was started with"
            )
        return response

    @staticmethod
    def _raise_for(response: LedgerResponse, what: str) -> None:
        if response.is_success:
            return
        detail = _detail(response)
        if response.status_code == 404:
            raise UnknownBehaviorError(f"{what}: {detail}")
        if response.status_code == 409 and _error(response) == BehaviorRetired.__name__:
            raise BehaviorRetired(f"{what}: {detail}")
        if response.status_code == 409 and _error(response) == RunConflict.__name__:
            differ = response.json().get("differ") or []
            raise RunConflict(f"{what}: {detail}", [str(f) for f in differ])
        if response.status_code >= 500:
            raise LedgerUnavailable(f"{what}: ledger answered {response.status_code}: {detail}")
        raise CleandayError(f"{what}: ledger answered {response.status_code}: {detail}")

    # reads

    async def behaviors(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/api/v1/behaviors")
        self._raise_for(response, "list behaviors")
        data = response.json()
        return list(data["behaviors"] if isinstance(data, dict) else data)

    async def behavior(self, name: str) -> dict[str, Any]:
        response = await self._request("GET", f"/api/v1/behaviors/{name}")
        self._raise_for(response, f"behavior {name}")
        return dict(response.json())

    async def state(self, name: str) -> dict[str, Any]:
        """The behavior's tier, status and clean days now (`GET .../{name}/state`)."""
        response = await self._request("GET", f"/api/v1/behaviors/{name}/state")
        self._raise_for(response, f"state of {name}")
        return dict(response.json())

    async def work_order(self, name: str) -> dict[str, Any]:
        """The Work Order version the ledger holds: {behavior, version, work_order}."""
        response = await self._request("GET", f"/api/v1/behaviors/{name}/work-order")
        self._raise_for(response, f"work order of {name}")
        return dict(response.json())

    async def history(self, name: str) -> list[dict[str, Any]]:
        response = await self._request("GET", f"/api/v1/behaviors/{name}/history")
        self._raise_for(response, f"history of {name}")
        data = response.json()
        return list(data["entries"] if isinstance(data, dict) else data)

    async def medians(self, name: str) -> dict[str, Any]:
        response = await self._request("GET", f"/api/v1/behaviors/{name}/medians")
        self._raise_for(response, f"medians of {name}")
        return dict(response.json())

    # writes

    async def register(self, work_order_yaml: str, *, revive: bool = False) -> dict[str, Any]:
        """Register a Work Order; `revive` brings a retired behavior back at tier A (without
        it, a retired behavior's raises BehaviorRetired)."""
        body: dict[str, Any] = {"work_order": work_order_yaml}
        if revive:
            body["revive"] = True
        response = await self._request("POST", "/api/v1/behaviors", json=body)
        self._raise_for(response, "register behavior")
        return dict(response.json())

    async def report_run(self, report: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Report a run outcome; returns (first_time, body). Repeats answer 200, not an error."""
        response = await self._request("POST", "/api/v1/runs", json=report)
        self._raise_for(response, f"report run {report.get('run_id')}")
        return response.status_code == 201, dict(response.json())

    async def report_runs(self, reports: list[dict[str, Any]]) -> list[tuple[bool, dict[str, Any]]]:
        """Report runs in one request (`POST /api/v1/runs/batch`, all or nothing): for each,
        in order, (first_time, result) as report_run gives for it."""
        response = await self._request("POST", "/api/v1/runs/batch", json=reports)
        self._raise_for(response, f"report {len(reports)} runs")
        return [(bool(r["recorded"]), dict(r)) for r in response.json()["results"]]

    async def request_permit(
        self, behavior: str, run_id: str, item_id: str | None = None
    ) -> dict[str, Any]:
        """Ask for an act permit now; raises PermitDenied with the ledger's reason on 403."""
        body: dict[str, Any] = {"behavior": behavior, "run_id": run_id}
        if item_id is not None:
            body["item_id"] = item_id
        response = await self._request("POST", "/api/v1/permits", json=body)
        if response.status_code == 403:
            raise PermitDenied(_detail(response))
        self._raise_for(response, f"permit for {behavior} run {run_id}")
        return dict(response.json())

    async def item(self, behavior: str, item_id: str) -> dict[str, Any]:
        """A proposal or staged item and where its sign-off stands (`status`)."""
        response = await self._request("GET", f"/api/v1/behaviors/{behavior}/items/{item_id}")
        self._raise_for(response, f"item {item_id} of {behavior}")
        return dict(response.json())

    async def approve(self, behavior: str, items: list[str] | None = None) -> dict[str, Any]:
        response = await self._request(
            "POST", f"/api/v1/behaviors/{behavior}/batch/approve", json={"items": items}
        )
        self._raise_for(response, f"approve batch of {behavior}")
        return dict(response.json())

    async def reject(
        self, behavior: str, reason: str, items: list[str] | None = None
    ) -> dict[str, Any]:
        response = await self._request(
            "POST",
            f"/api/v1/behaviors/{behavior}/batch/reject",
            json={"items": items, "reason": reason},
        )
        self._raise_for(response, f"reject batch of {behavior}")
        return dict(response.json())

    async def release(self, behavior: str, item_id: str) -> dict[str, Any]:
        response = await self._request(
            "POST", f"/api/v1/behaviors/{behavior}/staged/{item_id}/release"
        )
        self._raise_for(response, f"release {item_id} of {behavior}")
        return dict(response.json())

    async def decide(self, week: str, behavior: str, decision: str) -> dict[str, Any]:
        response = await self._request(
            "POST",
            f"/api/v1/reviews/{week}/decisions",
            json={"behavior": behavior, "decision": decision},
        )
        self._raise_for(response, f"decision for {behavior} week {week}")
        return dict(response.json())

    async def review(self, week: str) -> dict[str, Any]:
        response = await self._request("GET", f"/api/v1/reviews/{week}")
        self._raise_for(response, f"review of week {week}")
        return dict(response.json())

    async def close_review(self, week: str) -> dict[str, Any]:
        response = await self._request("POST", f"/api/v1/reviews/{week}/close")
        self._raise_for(response, f"close review {week}")
        return dict(response.json())

    async def close_day(self, day: str) -> dict[str, Any]:
        response = await self._request("POST", f"/api/v1/days/{day}/close")
        self._raise_for(response, f"close day {day}")
        return dict(response.json())

    async def set_status(self, behavior: str, action: str) -> dict[str, Any]:
        """`action` is pause, resume or retire."""
        response = await self._request("POST", f"/api/v1/behaviors/{behavior}/{action}")
        self._raise_for(response, f"{action} {behavior}")
        return dict(response.json())

    async def override(
        self, behavior: str, reason: str, kind: str = "manual", tier: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason, "kind": kind}
        if tier is not None:
            body["tier"] = tier
        response = await self._request("POST", f"/api/v1/behaviors/{behavior}/override", json=body)
        self._raise_for(response, f"override {behavior}")
        return dict(response.json())


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error(response: LedgerResponse) -> str | None:
    """The error type the ledger named in its answer (`service.errors.error_body`)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("error")) if isinstance(body, dict) and body.get("error") else None


def _detail(response: LedgerResponse) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:500]
