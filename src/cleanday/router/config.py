"""Routing configuration: prices, timeout classes, shared guardrail policies, per-transport keys.

Model names live here (or in presets), never in code: a deployment writes them in the YAML
file named by CLEANDAY_ROUTER_CONFIG.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cleanday.errors import ConfigError
from cleanday.workorder import Guardrails


class ModelInfo(BaseModel):
    """What cleanday knows about a model (or a glob of models, e.g. 'anthropic/*')."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float | None = Field(default=None, ge=0, description="USD per 1M input tokens")
    output_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per 1M output tokens"
    )
    timeout_class: Literal["fast", "reasoning"] | None = None
    # the model's id on the Anthropic API when it differs from OpenRouter's
    anthropic_id: str | None = None


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelInfo] = Field(default_factory=dict)
    # the longest one attempt may take, by timeout class: from sending the request to the last
    # byte of the answer (a provider trickling its answer is cut off there, and falls back)
    timeouts: dict[str, float] = Field(default_factory=lambda: {"fast": 30.0, "reasoning": 180.0})
    # the longest a whole call may take, by timeout class: every attempt, 429 wait and fallback
    # (a step may take as long: cleanday.runtime.activities.STEP_TIMEOUT_SECONDS)
    call_deadlines: dict[str, float] = Field(
        default_factory=lambda: {"fast": 120.0, "reasoning": 600.0}
    )
    # estimate for a call to a model with no price in `models` (the budget check needs one)
    default_estimate_usd: float = Field(default=0.01, ge=0)
    # output tokens assumed when the preset sets no max_tokens
    default_max_tokens: int = Field(default=1024, gt=0)
    rate_limit_attempts: int = Field(default=3, ge=1)
    # timeout classes derived from OpenRouter's model list (GET /models), refreshed this often;
    # off for a deployment that must not reach OpenRouter for anything but its calls
    model_catalog: bool = True
    model_catalog_ttl_s: float = Field(default=3600.0, gt=0)
    # a 429's Retry-After is waited out in full, never cut short; one longer than this, or than
    # the time the call has left, ends the call at once with RateLimited (a documented failure)
    max_retry_after_s: float = Field(default=60.0, ge=0)
    # the wait after a 429 that names none
    default_retry_after_s: float = Field(default=1.0, ge=0)
    policies: dict[str, Guardrails] = Field(default_factory=dict)
    # whether the direct Anthropic account has zero data retention
    anthropic_zdr: bool = False
    anthropic_version: str = "2023-06-01"
    # key references per transport, overriding the behavior's own key for that transport
    # (spend still counts against the behavior's key and cap)
    transport_keys: dict[str, str] = Field(default_factory=dict)

    def model_info(self, model: str) -> ModelInfo:
        """The most specific entry matching `model`: an exact name beats a glob."""
        if model in self.models:
            return self.models[model]
        matches = [(p, info) for p, info in self.models.items() if fnmatchcase(model, p)]
        if not matches:
            return ModelInfo()
        return max(matches, key=lambda m: len(m[0]))[1]

    def anthropic_model(self, model: str) -> str | None:
        """The model's id on the Anthropic API, or None when Anthropic does not serve it."""
        info = self.model_info(model)
        if info.anthropic_id:
            return info.anthropic_id
        prefix, sep, rest = model.partition("/")
        if sep and prefix == "anthropic":
            return rest
        return None


def load_router_config(path: Path | None) -> RouterConfig:
    if path is None:
        return RouterConfig()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"router config {path}: cannot read ({exc.strerror})") from None
    try:
        return RouterConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"router config {path}: {exc}") from None
