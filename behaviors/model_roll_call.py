"""model_roll_call: twice a day, check the configured model IDs against a truth table.

Config: `models` (the model IDs in use, as the Work Orders name them), `truth_table` (a YAML file,
absolute or relative to `behaviors/`, of the form `models: {id: {status: current|deprecated|
retired, replacement: id?}}`). The run also pings the preset's model and records the ID that
answered. It reports "No changes." or one line per difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from behaviors._common import bundled, plural
from cleanday.errors import ConfigError
from cleanday.steps import Action, StepContext, StepResult, tier_summary


@dataclass(frozen=True)
class Difference:
    model: str
    problem: str

    def __str__(self) -> str:
        return f"{self.model}: {self.problem}"


def load_truth_table(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"model_roll_call: cannot read truth table {path}: {exc}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ConfigError(f"model_roll_call: {path} must hold a mapping 'models: {{id: {{...}}}}'")
    return {str(k): dict(v or {}) for k, v in models.items()}


def compare(configured: list[str], truth: dict[str, dict[str, Any]]) -> list[Difference]:
    """Every configured model the truth table does not list as current."""
    found: list[Difference] = []
    for model in dict.fromkeys(configured):  # keep order, drop repeats
        entry = truth.get(model)
        if entry is None:
            found.append(Difference(model, "not in the truth table"))
            continue
        status = str(entry.get("status", "current"))
        if status == "current":
            continue
        replacement = entry.get("replacement")
        use = f"; use {replacement}" if replacement else ""
        found.append(Difference(model, f"{status}{use}"))
    return found


async def run(ctx: StepContext) -> StepResult:
    configured = [str(m) for m in ctx.config.get("models", [])]
    if not configured:
        raise ConfigError("model_roll_call: config.models is empty: list the model IDs in use")
    table_ref = ctx.config.get("truth_table")
    if not table_ref:
        raise ConfigError("model_roll_call: config.truth_table is missing: name the YAML file")
    truth = load_truth_table(bundled(str(table_ref)))
    ping = await ctx.model.complete([{"role": "user", "content": "Roll call: answer 'present'."}])
    differences = compare(configured, truth)
    # Which model answered is recorded, not judged here: the policy gate judges it.
    answered = ping.model
    lines = [str(d) for d in differences]
    report = "No changes." if not lines else "\n".join(lines)
    half = "am" if ctx.now.hour < 12 else "pm"
    day = ctx.now.date().isoformat()
    output = {
        "checked": configured,
        "answered_by": answered,
        "differences": lines,
    }
    headline = (
        "No changes." if not lines else f"{plural(len(lines), 'difference')}: " + "; ".join(lines)
    )
    return StepResult(
        output=output,
        summary=tier_summary(
            ctx.tier,
            proposed=f"Proposal: roll call report. {headline}",
            staged=f"Roll call report staged. {headline}",
            done=headline,
        ),
        actions=[
            Action(
                "write",
                f"roll_call/{day}-{half}.json",
                {"content": json.dumps({**output, "report": report}, indent=2) + "\n"},
            )
        ],
        metrics={"differences": float(len(lines))},
        completions=[ping],
    )


class RollCallReport(BaseModel):
    """The roll call's output, for the schema gate (a pydantic model named in its options)."""

    model_config = ConfigDict(extra="forbid")

    checked: list[str]
    answered_by: str
    differences: list[str]
