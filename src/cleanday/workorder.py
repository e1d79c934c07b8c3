"""Work Orders: the YAML file in `behaviors/` that declares a behavior, validated with pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cleanday.domain import IdlePolicy, Tier
from cleanday.errors import WorkOrderError

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


# --- loading -------------------------------------------------------------------------------


def load_work_order(path: str | Path) -> WorkOrder:
    """Read, validate and check a Work Order file; every refusal is a `WorkOrderError` naming
    the file, the field (with its line) and what is allowed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkOrderError(str(path), f"cannot read the file: {exc.strerror or exc}") from exc
    return parse_work_order(text, str(path))


def parse_work_order(text: str, source: str = "<work order>") -> WorkOrder:
    """Validate Work Order YAML text (from a file or an API body) as `load_work_order` does."""
    from cleanday.registration import check_no_secrets, check_work_order

    # secrets first: a file holding a token is refused before anything echoes its contents
    check_no_secrets(text, source)
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise WorkOrderError(source, f"{where}invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise WorkOrderError(source, f"invalid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise WorkOrderError(source, "a Work Order is a YAML mapping (name:, description:, ...)")
    try:
        wo = WorkOrder.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = _field_path(loc)
        line = _line_of(text, loc)
        where = f" (line {line})" if line else ""
        raise WorkOrderError(source, _explain(err) + where, field=field) from exc
    check_work_order(wo, source)
    return wo


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("cron", "interval", "webhook") and out == "trigger":
            continue  # the discriminator tag pydantic adds to the location
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "union_tag_invalid":
        return "trigger type must be one of: cron, interval, webhook"
    if kind == "string_pattern_mismatch" and err["loc"] == ("name",):
        return "must be lower_snake_case: a letter, then letters, digits or '_' (2-63 chars)"
    return str(err.get("msg", "invalid value"))


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location, if it can be found."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                key_node = None
                continue
            key_node = next(k for k, v in node.value if v is match)
            line = key_node.start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
    return line
