"""Anomaly detectors: non-blocking signals that a run strayed from the behavior's recent median.

    from cleanday.anomalies import Medians, RunFacts, detect
    flags = detect(work_order.anomalies, RunFacts(cost_usd=..., latency_ms=..., output_size=...,
                   fell_back=completion.fell_back), Medians.from_dict(ledger_medians_json))

Detectors (thresholds per behavior, `cleanday.workorder.AnomalyThresholds`):
- cost: cost above cost_factor x the trailing median;
- latency: latency above latency_factor x the median;
- fallback: the router fell back from its primary transport (when fallback_is_anomaly);
- output_size: output size outside [size_low_factor x median, size_high_factor x median];
- provider_answer: the router did not take a provider's answer as sent (a cost it reported
  that is not a cost, an answer without usage, a malformed 200 it fell back from): always.
A detector whose median is unknown (no runs yet) or zero finds nothing. Every flag's detail states
the numbers. Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanday.domain import AnomalyFlag
from cleanday.steps import StepResult
from cleanday.workorder import AnomalyThresholds


@dataclass(frozen=True)
class RunFacts:
    cost_usd: float = 0.0
    latency_ms: float | None = None
    output_size: int | None = None
    fell_back: bool = False
    fallback_detail: str = ""
    # what the router did not take as a provider sent it (cleanday.router.Completion.doubts)
    doubts: tuple[str, ...] = ()

    @classmethod
    def from_result(cls, result: StepResult, output_size: int | None = None) -> RunFacts:
        """Facts summed over every model call the step made."""
        calls = result.completions
        fell = [c for c in calls if c.fell_back]
        size = output_size
        if size is None:
            size = len(_text(result.output).encode())
        return cls(
            cost_usd=sum(c.cost_usd for c in calls),
            latency_ms=sum(c.latency_ms for c in calls) if calls else None,
            output_size=size,
            fell_back=bool(fell),
            fallback_detail=", ".join(f"{c.model} via {c.transport}" for c in fell),
            doubts=tuple(d for c in calls for d in c.doubts),
        )


@dataclass(frozen=True)
class Medians:
    """Trailing medians the ledger computes over the behavior's recent runs; None = no data."""

    cost_usd: float | None = None
    latency_ms: float | None = None
    output_size: float | None = None
    runs: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Medians:
        if not data:
            return cls()

        def num(key: str) -> float | None:
            v = data.get(key)
            return float(v) if v is not None else None

        return cls(
            cost_usd=num("cost_usd"),
            latency_ms=num("latency_ms"),
            output_size=num("output_size"),
            runs=int(data.get("runs", 0) or 0),
        )


def _text(output: str | dict[str, Any]) -> str:
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, sort_keys=True)


def _known(median: float | None) -> bool:
    return median is not None and median > 0


def cost(t: AnomalyThresholds, f: RunFacts, m: Medians) -> AnomalyFlag | None:
    if not _known(m.cost_usd):
        return None
    assert m.cost_usd is not None
    limit = t.cost_factor * m.cost_usd
    if f.cost_usd > limit:
        return AnomalyFlag(
            "cost",
            f"cost ${f.cost_usd:.4f} is above {t.cost_factor:g}x the trailing median "
            f"${m.cost_usd:.4f} (limit ${limit:.4f})",
        )
    return None


def latency(t: AnomalyThresholds, f: RunFacts, m: Medians) -> AnomalyFlag | None:
    if f.latency_ms is None or not _known(m.latency_ms):
        return None
    assert m.latency_ms is not None
    limit = t.latency_factor * m.latency_ms
    if f.latency_ms > limit:
        return AnomalyFlag(
            "latency",
            f"latency {f.latency_ms:.0f} ms is above {t.latency_factor:g}x the trailing median "
            f"{m.latency_ms:.0f} ms (limit {limit:.0f} ms)",
        )
    return None


def fallback(t: AnomalyThresholds, f: RunFacts, m: Medians) -> AnomalyFlag | None:
    if not (t.fallback_is_anomaly and f.fell_back):
        return None
    used = f": answered by {f.fallback_detail}" if f.fallback_detail else ""
    return AnomalyFlag("fallback", f"the router fell back from its primary transport{used}")


def output_size(t: AnomalyThresholds, f: RunFacts, m: Medians) -> AnomalyFlag | None:
    if f.output_size is None or not _known(m.output_size):
        return None
    assert m.output_size is not None
    low, high = t.size_low_factor * m.output_size, t.size_high_factor * m.output_size
    if f.output_size < low or f.output_size > high:
        side = "below" if f.output_size < low else "above"
        return AnomalyFlag(
            "output_size",
            f"output size {f.output_size} bytes is {side} the range {low:.0f}-{high:.0f} bytes "
            f"({t.size_low_factor:g}x to {t.size_high_factor:g}x the trailing median "
            f"{m.output_size:.0f})",
        )
    return None


def provider_answer(t: AnomalyThresholds, f: RunFacts, m: Medians) -> AnomalyFlag | None:
    if not f.doubts:
        return None
    return AnomalyFlag("provider_answer", "; ".join(f.doubts)[:1000])


DETECTORS = (cost, latency, fallback, output_size, provider_answer)


def detect(thresholds: AnomalyThresholds, facts: RunFacts, medians: Medians) -> list[AnomalyFlag]:
    """Every anomaly of one run, in detector order."""
    flags = [d(thresholds, facts, medians) for d in DETECTORS]
    return [f for f in flags if f is not None]
