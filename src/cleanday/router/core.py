"""The Router: one model call for a behavior, through its key, preset, guardrails and transports.

The decisions, in the order they are taken for a call:

1. Read the behavior's binding (key reference, cap, cadence, transports, guardrails) and its
   current preset version (on PostgreSQL from a cache the reservation revalidates); apply the
   tier's parameter overrides; take the timeout class (see `timeout_class`).
2. Plan the routes (the Work Order's transport order; each transport offers a route, Anthropic
   only for models it serves) and check every guardrail against every route before anything
   is sent. A violation raises PolicyViolation: the router never quietly drops to a route that
   happens to be allowed.
3. Before *every* request (first try, 429 retry, fallback) reserve the call's estimate against
   the key's cap under a database lock (BudgetExceeded, nothing sent, when it would pass);
   settle the reservation with the actual cost afterwards (an answered call's settlement is
   not waited for on PostgreSQL: `drain()`), or release it if nothing was charged.
4. Send. The timeout class bounds each attempt as a whole, from the request to the answer's
   last byte (`timeouts`), and the call as a whole (`call_deadlines`). 200 answers. 429 is
   retried on the same transport after its Retry-After, in full, at most `rate_limit_attempts`
   (3) requests in all, then RateLimited (a documented failure; no fallback, since another
   transport would only hide a rate problem of this behavior's key); a Retry-After longer than
   the time the call has left, or than `max_retry_after_s`, is RateLimited at once. 402, 408,
   5xx, timeouts, connection errors and malformed 200s fall back to the next transport. 400,
   401, 403, 404, 422 and any other 4xx raise ProviderRefused: no fallback.
5. A 402 is a budget signal even when a fallback answered: the attempt is kept in
   `Completion.attempts` (so `Completion.budget_refused` is true) and the reservation is marked
   `refused_402`; the runtime reports the budget gate failed for that run. When no fallback
   answers after a 402 the call raises BudgetExceeded. Every fallback sets
   `Completion.fell_back` for the anomaly detector.
6. A provider's answer is not trusted as sent. A reported cost that is negative, not finite or
   not a number is replaced by the price table's; an answer with no usage, and a 200 whose body
   cannot be read (from a transport that bills), is charged the call's estimate. Each is logged
   and kept in `Completion.doubts`, which the run reports as anomalies.

Every error carries `.attempts`; texts that came from a provider (errors, and the answer's text
and model) pass through the redactor, so a provider that echoes a key back never puts it into
an exception, a log line, a table or a run's history.

What one call needs is fixed in a `Call` before its first request. What differs between
providers (the request's shape, the answer's, the key sent, the guardrails only one knows) is
each transport's module in `router/transports/`; the decisions above are the same for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlmodel import Session, select

from cleanday.budget import SQL_BINDING, BindingRow, PresetReader, Reservation, SpendStore
from cleanday.config import Settings
from cleanday.db import make_engine
from cleanday.domain import Tier
from cleanday.errors import (
    BudgetExceeded,
    CleandayError,
    ConfigError,
    ProviderRefused,
    RateLimited,
    RegistrationError,
    RoutingError,
    SecretResolutionError,
    UnknownBehaviorError,
)
from cleanday.models import T_BEHAVIORS
from cleanday.presets import PresetStore, PresetVersion
from cleanday.router.call import Answer, Call, Route
from cleanday.router.catalog import ModelCatalog
from cleanday.router.config import RouterConfig, load_router_config
from cleanday.router.guardrails import check_routes, effective_guardrails
from cleanday.router.management import OpenRouterManagement, preset_slug
from cleanday.router.tables import RoutingBinding
from cleanday.router.transports import TRANSPORTS, Transport
from cleanday.router.transports.openrouter import provisioned_key_path
from cleanday.router.types import Attempt, Completion
from cleanday.secrets import Redactor, Secret, SecretResolver, redact_secrets
from cleanday.workorder import WorkOrder

log = logging.getLogger("cleanday.router")

# statuses after which the next transport is tried; anything else 4xx is a refusal
_FALL_BACK = frozenset({402, 408, 500, 502, 503, 504, 524, 529})

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client() -> httpx.AsyncClient:
    """The process's pooled client (one per event loop, since a pool belongs to its loop)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            timeout=httpx.Timeout(30.0),
        )
        _clients[loop] = client
    return client


def _retry_after(value: str | None, default: float, now: datetime) -> float:
    """Seconds a 429 asks to wait: delta-seconds or an HTTP date (RFC 9110), else `default`."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        seconds = (parsed - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else default


@dataclass(frozen=True)
class _Outcome:
    """What one HTTP attempt produced, before the router decides what to do next."""

    status: int | None
    error: str | None = None
    answer: Answer | None = None
    retry_after: str | None = None
    doubt: str | None = None  # what was not taken as sent (see the module docstring, 6)


class Router:
    """Routes a behavior's model calls; the decisions live here, not in a provider's config."""

    def __init__(
        self,
        settings: Settings,
        spend_store: SpendStore,
        presets: PresetStore,
        resolver: SecretResolver,
        http_client: httpx.AsyncClient | None = None,
        *,
        config: RouterConfig | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.spend = spend_store
        self.presets = presets
        self.resolver = resolver
        # the keys this router provisions on OpenRouter live in its data dir's keys/
        resolver.allow_directory(settings.data_dir / "keys")
        self.redact: Redactor = resolver.redactor
        self._client = http_client
        self.config = config or load_router_config(settings.router_config)
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock or spend_store.clock
        self.engine: Engine = spend_store.engine
        # configured secrets are redacted like resolved keys, wherever text leaves this process
        for configured in (
            settings.token,
            settings.openrouter_management_key,
            settings.notion_token,
            settings.slack_token,
        ):
            self.redact.add(configured or "")
        self._transports: dict[str, Transport] = {
            name: transport(settings, self.config) for name, transport in TRANSPORTS.items()
        }
        self.catalog = ModelCatalog(
            settings.openrouter_base_url,
            lambda: self.client,
            ttl_s=self.config.model_catalog_ttl_s,
        )

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine | None = None) -> Router:
        """Everything from DATABASE_URL and the environment: what a worker process needs."""
        engine = engine or make_engine(settings.resolved_database_url)
        return cls(
            settings,
            SpendStore(engine, timezone=settings.timezone, pool_size=settings.budget_pool_size),
            PresetStore(engine),
            SecretResolver(),
        )

    async def drain(self) -> None:
        """Wait for the settlements of answered calls still on their way to the database."""
        await self.spend.drain()

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client or shared_client()

    # --- binding ---------------------------------------------------------------------

    def bind_local(self, work_order: WorkOrder) -> PresetVersion:
        """Record the behavior's key, cap, transports and guardrails; return its current preset
        version.

        The ledger numbers preset versions: registration records them, a demotion restores one,
        and binding only reads the current one (a worker restarting with the Work Order file
        never undoes a restore). A router used without the ledger (no registration for the
        behavior) records the Work Order's preset itself, as a new version when it changed.
        Refuses a key reference already bound to another behavior. Safe to call again.
        """
        effective_guardrails(work_order.guardrails.model_dump(exclude_unset=True), self.config)
        self._learn_secrets(work_order)
        try:
            self._store_binding(work_order)
        except sa.exc.IntegrityError:
            # another worker starting at the same moment inserted the row between this one's
            # read and its insert (PostgreSQL, two workers): it exists now, so update it
            self._store_binding(work_order)
        with self.engine.connect() as conn:
            registered = conn.execute(
                sa.select(T_BEHAVIORS.c.name).where(T_BEHAVIORS.c.name == work_order.name)
            ).first()
        current = self.presets.latest(work_order.name) if registered is not None else None
        if current is not None:
            return current
        version = self.presets.record(work_order.name, work_order.preset)
        if not self.presets.publications(work_order.name):
            self.presets.publish(work_order.name, Tier.A, version.version, "registration")
        return version

    def _store_binding(self, work_order: WorkOrder) -> None:
        """Insert or update the behavior's binding row; refuses a key bound to another."""
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            other = session.exec(
                select(RoutingBinding).where(
                    RoutingBinding.key_ref == work_order.key.ref,
                    RoutingBinding.behavior != work_order.name,
                )
            ).first()
            if other is not None:
                raise RegistrationError(
                    f"work order {work_order.name}: key {work_order.key.ref} is already bound to "
                    f"behavior {other.behavior}; each behavior needs its own key"
                )
            binding = session.get(RoutingBinding, work_order.name)
            if binding is None:
                binding = RoutingBinding(
                    behavior=work_order.name,
                    key_ref=work_order.key.ref,
                    cap_usd=work_order.key.cap_usd,
                    cadence=work_order.key.cadence,
                    bound_at=now,
                    updated_at=now,
                )
            binding.key_ref = work_order.key.ref
            binding.cap_usd = work_order.key.cap_usd
            binding.cadence = work_order.key.cadence
            binding.transports = list(work_order.transports.order)
            binding.guardrails = work_order.guardrails.model_dump(mode="json", exclude_unset=True)
            binding.updated_at = now
            session.add(binding)
            session.commit()

    async def bind(self, work_order: WorkOrder) -> PresetVersion:
        """Bind a behavior; with OPENROUTER_MANAGEMENT_KEY also provision its OpenRouter key
        (limit = cap, reset = cadence) and publish its preset version there.

        Safe to repeat (a worker binds every behavior when it starts): the key is created once
        and updated only when the cap or cadence changed; a version is published once.
        """
        name = work_order.name
        try:
            previous: BindingRow | None = self._binding(name)
        except UnknownBehaviorError:
            previous = None
        version = self.bind_local(work_order)
        order = work_order.transports.order
        if self.config.model_catalog and any(
            t in self._transports and self._transports[t].uses_model_list for t in order
        ):
            self.catalog.refresh_soon()
        management = self._management()
        # the management key provisions OpenRouter keys: only a behavior routed there needs one
        if management is None or "openrouter" not in order:
            return version
        key = work_order.key
        key_hash = previous.openrouter_key_hash if previous else None
        if key_hash is not None and not self._provisioned_key_path(name).exists():
            raise ConfigError(
                f"behavior {name}: its OpenRouter key was provisioned (hash {key_hash}) but its "
                f"file {self._provisioned_key_path(name)} is not on this machine; every worker "
                "must see the same CLEANDAY_DATA_DIR/keys (a shared volume, see the README's "
                "Scale-out section), or copy the file there"
            )
        if key_hash is None:
            key_hash, secret = await management.create_key(
                f"cleanday {name}", key.cap_usd, key.cadence
            )
            self._store_provisioned_key(name, secret)
        elif previous is not None and (previous.cap_usd, previous.cadence) != (
            key.cap_usd,
            key.cadence,
        ):
            await management.update_key(key_hash, key.cap_usd, key.cadence)
        slug = preset_slug(name)
        with Session(self.engine) as session:
            row = session.get(RoutingBinding, name)
            assert row is not None
            row.openrouter_key_hash = key_hash
            row.preset_slug = slug
            session.add(row)
            session.commit()
        if self.presets.remote_version(name, version.version) is None:
            remote = await management.publish_preset(slug, self._preset_body(version, Tier.A))
            self.presets.set_remote_version(name, version.version, remote or 0)
        return version

    def _learn_secrets(self, work_order: WorkOrder) -> None:
        """Resolve the behavior's keys once at binding so the redactor knows them before any
        call: text its step code raises must not carry them even if the router never called."""
        refs = [work_order.key.ref, *self.config.transport_keys.values()]
        provisioned = self._provisioned_key_path(work_order.name)
        if provisioned.exists():
            refs.append(f"file:{provisioned}")
        for ref in refs:
            # an unresolvable reference fails the call that needs it, with its own message
            with contextlib.suppress(SecretResolutionError):
                self.resolver.resolve(ref)

    def _provisioned_key_path(self, behavior: str) -> Path:
        return provisioned_key_path(self.settings.data_dir, behavior)

    def _store_provisioned_key(self, behavior: str, secret: Secret) -> None:
        # the provisioned secret lives in a 0600 file under the data dir, never in the database
        path = self._provisioned_key_path(behavior)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(secret.reveal())

    def _management(self) -> OpenRouterManagement | None:
        raw = self.settings.openrouter_management_key
        if not raw:
            return None
        self.redact.add(raw)
        return OpenRouterManagement(
            self.settings.openrouter_base_url, Secret(raw), self.client, self.redact
        )

    async def publish_for_tier(self, behavior: str, tier: Tier) -> PresetVersion:
        """Promotion to `tier`: publish the current version for it (and to OpenRouter)."""
        version = self.presets.publish_for_tier(behavior, tier)
        await self._publish_remote(behavior, version, tier)
        return version

    async def restore_for_demotion(self, behavior: str, tier: Tier) -> PresetVersion:
        """Demotion to `tier`: restore the last version that was clean there."""
        version = self.presets.restore_for_demotion(behavior, tier)
        await self._publish_remote(behavior, version, tier)
        return version

    async def publish_remote(self, behavior: str, version: int, tier: Tier) -> bool:
        """Publish a recorded version for `tier` to OpenRouter, when the behavior's presets live
        there too (how the ledger's promotions and demotions reach it, through the outbox);
        whether it did."""
        return await self._publish_remote(behavior, self.presets.get(behavior, version), tier)

    async def _publish_remote(self, behavior: str, version: PresetVersion, tier: Tier) -> bool:
        management = self._management()
        if management is None:
            return False
        binding = self._binding(behavior)
        if not binding.preset_slug:
            return False
        await management.publish_preset(binding.preset_slug, self._preset_body(version, tier))
        return True

    def _preset_body(self, version: PresetVersion, tier: Tier) -> dict[str, Any]:
        spec = version.spec
        body: dict[str, Any] = {
            "model": spec.model,
            "messages": [{"role": "system", "content": spec.system_prompt or spec.name}],
            **version.parameters_for(tier),
        }
        if spec.fallback_models:
            body["models"] = [spec.model, *spec.fallback_models]
        if spec.provider:
            body["provider"] = dict(spec.provider)
        return body

    def _binding(self, behavior: str, conn: Connection | None = None) -> BindingRow:
        if conn is None:
            with self.engine.connect() as own:
                return self._binding(behavior, own)
        row = conn.execute(SQL_BINDING, {"behavior": behavior}).first()
        if row is None:
            raise UnknownBehaviorError(
                f"behavior {behavior!r} has no model key bound; register its Work Order first"
            )
        # a plain value, not the table class: a process that has bound nothing has no ORM
        # mappers configured, and an unconfigured SQLModel instance cannot even be read
        return BindingRow(**{**row._asdict(), "cap_usd": float(row.cap_usd)})

    # --- planning --------------------------------------------------------------------

    async def _prepare(
        self,
        behavior: str,
        tier: Tier,
        messages: list[dict[str, Any]],
        response_format: dict[str, Any] | None,
        run_id: str | None,
    ) -> tuple[Call, Reservation]:
        """Everything before the first request, with the budget check: read the binding and
        preset, plan the routes, check the guardrails, reserve the first estimate."""

        def plan(tx: PresetReader, binding: BindingRow) -> tuple[Call, float, str, str]:
            version = self.presets.current(behavior, tx)
            params = version.parameters_for(tier)
            guard = effective_guardrails(binding.guardrails, self.config)
            routes = self._routes(binding, version)
            check_routes(behavior, routes, guard, self.config, params)
            call = Call(
                behavior=behavior,
                tier=tier,
                messages=messages,
                response_format=response_format,
                run_id=run_id,
                binding=binding,
                version=version,
                params=params,
                require_zdr=guard.require_zdr,
                routes=routes,
                timeout=self._timeout(version),
            )
            first = routes[0]
            estimate = self._transports[first.transport].estimate(call, first)
            return call, estimate, first.transport, first.model

        # SQLite inline (a local write takes well under a millisecond); PostgreSQL on the event
        # loop's own connections, one pipelined round trip (`SpendStore.reserve_with_async`)
        return await self.spend.reserve_with_async(behavior, plan, run_id=run_id)

    def _routes(self, binding: BindingRow, version: PresetVersion) -> tuple[Route, ...]:
        """The Work Order's transports in order, each with the route it offers for the preset
        (a transport that cannot serve the preset's models offers none)."""
        routes: list[Route] = []
        for name in binding.transports:
            transport = self._transports.get(name)
            if transport is None:
                raise RoutingError(
                    f"behavior {binding.behavior}: its binding names transport {name!r}, which "
                    f"this router does not have ({', '.join(self._transports)}); register its "
                    "Work Order again"
                )
            route = transport.route(version.spec)
            if route is not None:
                routes.append(route)
        if not routes:
            raise RoutingError(
                f"behavior {binding.behavior}: no transport in {binding.transports} can serve "
                f"model {version.spec.model}; grant a transport in the Work Order or map the "
                "model in the router config"
            )
        return tuple(routes)

    def timeout_class(self, version: PresetVersion) -> str:
        """The preset's own class; else what OpenRouter's model list says about the model
        (cached; see ModelCatalog); else the routing config's entry for it; else fast."""
        spec = version.spec
        derived = self.catalog.timeout_class(spec.model) if self.config.model_catalog else None
        return (
            spec.timeout_class
            or derived
            or self.config.model_info(spec.model).timeout_class
            or "fast"
        )

    def _timeout(self, version: PresetVersion) -> float:
        return self.config.timeouts.get(self.timeout_class(version), 30.0)

    def _call_deadline(self, call: Call) -> float:
        """Seconds the whole call may take: its class's, and never less than one attempt."""
        cls = self.timeout_class(call.version)
        return max(self.config.call_deadlines.get(cls, 120.0), call.timeout)

    # --- the call --------------------------------------------------------------------

    async def complete(
        self,
        behavior: str,
        tier: Tier,
        messages: list[dict[str, Any]],
        *,
        response_format: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Completion:
        started = time.perf_counter()
        t0 = self._monotonic()
        call, reservation = await self._prepare(behavior, tier, messages, response_format, run_id)
        try:
            return await self._send(call, reservation, started, t0 + self._call_deadline(call))
        finally:
            if self.config.model_catalog and any(
                self._transports[r.transport].uses_model_list for r in call.routes
            ):
                # in the background, after this call: it never waits for the model list
                self.catalog.refresh_soon()

    async def _send(
        self, call: Call, first: Reservation, started: float, deadline: float
    ) -> Completion:
        """Each route in turn, each request reserved first, until `deadline` (monotonic); see
        the module docstring (4, 5, 6) for what each answer leads to."""
        behavior = call.behavior
        attempts: list[Attempt] = []
        doubts: list[str] = []
        saw_402 = False
        reservation: Reservation | None = first
        try:
            for index, route in enumerate(call.routes):
                transport = self._transports[route.transport]
                for tries in range(1, self.config.rate_limit_attempts + 1):
                    left = deadline - self._monotonic()
                    if left <= 0:
                        raise self._with_attempts(
                            RoutingError(
                                f"behavior {behavior}: the call ran past its deadline "
                                f"({self._call_deadline(call):g} s for timeout class "
                                f"{self.timeout_class(call.version)}) before "
                                f"{route.transport} was tried; raise call_deadlines in the "
                                "router config if calls need longer"
                            ),
                            attempts,
                        )
                    # the gate runs before every request: first try, retry and fallback alike
                    if reservation is None:
                        reservation = await self.spend.reserve_async(
                            behavior,
                            transport.estimate(call, route),
                            run_id=call.run_id,
                            transport=route.transport,
                            model=route.model,
                        )
                    held, reservation = reservation, None
                    outcome = await self._attempt(
                        call, route, transport, held, min(call.timeout, left)
                    )
                    attempts.append(
                        Attempt(route.transport, route.model, outcome.status, outcome.error)
                    )
                    if outcome.doubt:
                        doubts.append(outcome.doubt)
                    answer = outcome.answer
                    if answer is not None:
                        return Completion(
                            text=answer.text,
                            model=answer.model or route.model,
                            transport=route.transport,
                            cost_usd=answer.cost_usd or 0.0,
                            tokens_in=answer.tokens_in,
                            tokens_out=answer.tokens_out,
                            latency_ms=(time.perf_counter() - started) * 1000,
                            fell_back=index > 0,
                            attempts=tuple(attempts),
                            doubts=tuple(doubts),
                        )
                    if outcome.status == 429:
                        wait = _retry_after(
                            outcome.retry_after, self.config.default_retry_after_s, self._clock()
                        )
                        if tries >= self.config.rate_limit_attempts:
                            raise self._with_attempts(
                                RateLimited(
                                    f"behavior {behavior}: {route.transport} answered 429 "
                                    f"{self.config.rate_limit_attempts} times; giving up (a "
                                    "documented failure, not an endless retry)"
                                ),
                                attempts,
                            )
                        left = deadline - self._monotonic()
                        if wait > self.config.max_retry_after_s or wait >= left:
                            longest = min(self.config.max_retry_after_s, max(left, 0.0))
                            raise self._with_attempts(
                                RateLimited(
                                    f"behavior {behavior}: {route.transport} answered 429 and "
                                    f"asks to retry after {wait:.0f} s, longer than the call "
                                    f"may wait ({longest:.0f} s: the time it has left, at most "
                                    f"max_retry_after_s {self.config.max_retry_after_s:g} s); "
                                    "giving up now rather than retrying early (a documented "
                                    "failure)"
                                ),
                                attempts,
                            )
                        await self._sleep(wait)
                        continue
                    if outcome.status == 402:
                        saw_402 = True
                        log.warning(
                            "behavior %s: %s answered 402 (budget); falling back",
                            behavior,
                            route.transport,
                        )
                        break
                    if (
                        outcome.status is None
                        or outcome.status == 200  # a malformed answer
                        or outcome.status in _FALL_BACK
                        or outcome.status >= 500
                    ):
                        log.warning(
                            "behavior %s: %s failed (%s); falling back",
                            behavior,
                            route.transport,
                            outcome.error,
                        )
                        break
                    raise self._with_attempts(
                        ProviderRefused(
                            f"behavior {behavior}: {route.transport} refused the request with "
                            f"{outcome.status}: {outcome.error}; fix the request or the key, no "
                            "fallback is tried for a refusal"
                        ),
                        attempts,
                    )
        finally:
            if reservation is not None:  # reserved for an attempt never sent
                await self.spend.release_async(reservation)
        summary = "; ".join(f"{a.transport} {a.status or a.error}" for a in attempts)
        if saw_402:
            raise self._with_attempts(
                BudgetExceeded(
                    f"behavior {behavior}: the provider answered 402 (out of credit) and no "
                    f"fallback answered ({summary})"
                ),
                attempts,
            )
        raise self._with_attempts(
            RoutingError(f"behavior {behavior}: every transport failed ({summary})"), attempts
        )

    @staticmethod
    def _with_attempts(exc: CleandayError, attempts: list[Attempt]) -> CleandayError:
        exc.attempts = tuple(attempts)  # type: ignore[attr-defined]
        return exc

    def _key(self, binding: BindingRow, transport: Transport) -> Secret | None:
        """The key `transport` sends for the behavior; None when an optional one is unset."""
        ref = transport.key_ref(binding)
        if not transport.key_optional:
            return self.resolver.resolve(ref)
        try:
            return self.resolver.resolve(ref)
        except SecretResolutionError:
            return None

    async def _attempt(
        self,
        call: Call,
        route: Route,
        transport: Transport,
        reservation: Reservation,
        timeout: float,
    ) -> _Outcome:
        """One request, within `timeout` from sending it to the answer's last byte; its
        reservation settled with what the answer cost, or released."""
        settled = False
        try:
            try:
                request = transport.request(call, route, self._key(call.binding, transport))
            except SecretResolutionError:
                raise  # the deployment's secret: an infrastructure error of the run, no fallback
            except ConfigError as exc:
                raise RoutingError(f"behavior {call.behavior}: {exc}") from None
            try:
                # httpx's timeout bounds each read; a provider trickling its answer in small
                # chunks would never trip it, so the class bounds the attempt as a whole
                async with asyncio.timeout(timeout):
                    resp = await self.client.post(
                        request.url, json=request.body, headers=request.headers, timeout=timeout
                    )
            except (TimeoutError, httpx.TimeoutException):
                return _Outcome(None, f"timeout after {timeout:g}s")
            except httpx.TransportError as exc:
                return _Outcome(None, self.redact(f"connection error: {type(exc).__name__}"))
            if resp.status_code != 200:
                await self.spend.release_async(
                    reservation,
                    status="refused_402" if resp.status_code == 402 else "released",
                )
                settled = True
                return _Outcome(
                    resp.status_code,
                    self.redact(_error_text(resp)),
                    retry_after=resp.headers.get("retry-after"),
                )
            try:
                answer = transport.parse(route, resp.json())
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                # the provider answered, so it may have billed: charge the estimate
                charged = reservation.estimate_usd if transport.bills else 0.0
                self.spend.settle_soon(reservation, charged, transport=route.transport)
                settled = True
                why = redact_secrets(self.redact(str(exc)))[:200]
                fault = (
                    f"{route.transport} answered 200 with a body that is not an answer ({why}); "
                    f"charged its estimate ${charged:.6f} and fell back"
                )
                log.warning("behavior %s: %s", call.behavior, fault)
                return _Outcome(200, f"malformed answer: {why}", doubt=fault)
            cost, doubt = answer.cost_usd, answer.doubt
            if cost is None:
                cost = reservation.estimate_usd if transport.bills else 0.0
                if transport.bills:
                    doubt = (
                        f"{route.transport} answered without usage, so its cost cannot be "
                        f"read; charged its estimate ${cost:.6f}"
                    )
            if doubt:
                log.warning("behavior %s: %s", call.behavior, doubt)
            model = redact_secrets(self.redact(answer.model or route.model))
            # the caller does not wait for the settlement: until it lands the reservation holds
            # its estimate (see SpendStore.settle_soon for what a crash in between means)
            self.spend.settle_soon(
                reservation,
                cost,
                transport=route.transport,
                model=model,
                tokens_in=answer.tokens_in,
                tokens_out=answer.tokens_out,
            )
            settled = True
            # key text in a good answer never reaches the run's history, a sink or the ledger
            text = redact_secrets(self.redact(answer.text))
            kept = Answer(text, model, answer.tokens_in, answer.tokens_out, cost, doubt)
            return _Outcome(200, answer=kept, doubt=doubt)
        finally:
            if not settled:
                await self.spend.release_async(reservation)


def _error_text(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        err = data.get("error", data) if isinstance(data, dict) else data
        message = err.get("message") if isinstance(err, dict) else None
        return str(message or err)[:300]
    except ValueError:
        return resp.text[:300]
