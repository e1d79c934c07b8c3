"""Work Orders: the schema (pydantic) of the YAML file in `behaviors/` that declares a behavior;
`cleanday.registration` reads a file against it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cleanday.domain import IdlePolicy, Tier

NAME_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CronTrigger(_Strict):
    type: Literal["cron"]
    cron: str = Field(description="five-field cron expression, e.g. '0 7 * * *'")
    timezone: str = "UTC"


class IntervalTrigger(_Strict):
    type: Literal["interval"]
    every_seconds: int = Field(gt=0)


class WebhookTrigger(_Strict):
    type: Literal["webhook"]
    # reference to the HMAC secret (env var name, file path or secret-manager ref), never the secret
    secret_ref: str
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    tolerance_seconds: int = Field(default=300, gt=0)


Trigger = Annotated[CronTrigger | IntervalTrigger | WebhookTrigger, Field(discriminator="type")]


class ModelKey(_Strict):
    """A credential reference with a cap; the secret itself never appears in a Work Order."""

    ref: str = Field(description="env:NAME, file:/path, or a resolver scheme such as vault:path")
    cap_usd: float = Field(gt=0)
    cadence: Literal["day", "week", "month"] = "month"


class PresetSpec(_Strict):
    """The preset as declared; each distinct content is a new preset version."""

    name: str
    system_prompt: str = ""
    model: str
    fallback_models: tuple[str, ...] = ()
    parameters: dict[str, Any] = Field(default_factory=dict)
    provider: dict[str, Any] = Field(default_factory=dict, description="provider routing prefs")
    timeout_class: Literal["fast", "reasoning"] | None = None
    # per-tier parameter overrides that tighten parameters, e.g. {"C": {"temperature": 0.2}}
    tiers: dict[Tier, dict[str, Any]] = Field(default_factory=dict)


class GateSpec(_Strict):
    """A gate to evaluate on every run. Built-ins: budget, policy, sensitive_info, schema, failure.

    A custom gate names its entry point `module:function` in `entry`.
    """

    name: str
    mode: Literal["block", "redact"] = "block"
    options: dict[str, Any] = Field(default_factory=dict)
    entry: str | None = None


class AnomalyThresholds(_Strict):
    cost_factor: float = 3.0
    latency_factor: float = 3.0
    size_low_factor: float = 0.25
    size_high_factor: float = 4.0
    fallback_is_anomaly: bool = True
    trailing_days: int = 14


class Guardrails(_Strict):
    """Allowed providers, blocked models, ZDR, image route. May name a shared policy instead."""

    policy: str | None = None
    allowed_providers: tuple[str, ...] | None = None
    blocked_models: tuple[str, ...] = ()
    require_zdr: bool = False
    image_route: str | None = None


class Transports(_Strict):
    """Ordered transports this behavior may use; OpenRouter only when granted here."""

    order: tuple[Literal["openrouter", "anthropic", "local"], ...] = ("local",)


class WorkOrder(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str
    trigger: Trigger
    reports: str = Field(description="what the behavior reports back, in a sentence")
    key: ModelKey
    preset: PresetSpec
    gates: tuple[GateSpec, ...] = ()
    anomalies: AnomalyThresholds = AnomalyThresholds()
    transports: Transports = Transports()
    guardrails: Guardrails = Guardrails()
    idle_days: IdlePolicy = IdlePolicy.SKIP
    entry: str = Field(description="step code entry point, 'module:function'")
    stage_expiry_hours: float = Field(default=72.0, gt=0)
    output_schema: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="free settings for the step")

    @field_validator("entry")
    @classmethod
    def _entry_shape(cls, v: str) -> str:
        module, sep, func = v.partition(":")
        if not sep or not module or not func:
            raise ValueError("must be 'module:function', e.g. 'behaviors.tag_audit:run'")
        return v


BUILTIN_GATES = frozenset({"budget", "policy", "sensitive_info", "schema", "failure"})
