from __future__ import annotations

from cleanday.anomalies import Medians, RunFacts, detect
from cleanday.steps import StepResult
from cleanday.workorder import AnomalyThresholds
from tests.unit.fakes import completion

T = AnomalyThresholds()
M = Medians(cost_usd=0.01, latency_ms=1000, output_size=400, runs=14)


def names(facts: RunFacts, medians: Medians = M, t: AnomalyThresholds = T) -> list[str]:
    return [f.name for f in detect(t, facts, medians)]


def test_a_run_near_its_medians_has_no_anomaly() -> None:
    assert detect(T, RunFacts(cost_usd=0.02, latency_ms=2500, output_size=500), M) == []


def test_cost_above_three_times_the_median_is_an_anomaly_that_states_the_numbers() -> None:
    [flag] = detect(T, RunFacts(cost_usd=0.0301, latency_ms=900, output_size=400), M)
    assert flag.name == "cost"
    assert flag.detail == ("cost $0.0301 is above 3x the trailing median $0.0100 (limit $0.0300)")


def test_cost_exactly_at_the_limit_is_not_an_anomaly() -> None:
    assert names(RunFacts(cost_usd=0.03)) == []


def test_latency_above_the_factor_is_an_anomaly() -> None:
    [flag] = detect(T, RunFacts(latency_ms=3001), M)
    assert flag.name == "latency"
    assert "3001 ms" in flag.detail and "1000 ms" in flag.detail


def test_fallback_used_is_an_anomaly_unless_the_behavior_turns_it_off() -> None:
    facts = RunFacts(fell_back=True, fallback_detail="m via anthropic")
    [flag] = detect(T, facts, M)
    assert flag.name == "fallback" and "m via anthropic" in flag.detail
    assert names(facts, t=AnomalyThresholds(fallback_is_anomaly=False)) == []


def test_output_size_outside_a_quarter_to_four_times_the_median_is_an_anomaly() -> None:
    assert names(RunFacts(output_size=99)) == ["output_size"]
    assert names(RunFacts(output_size=100)) == []
    assert names(RunFacts(output_size=1600)) == []
    [flag] = detect(T, RunFacts(output_size=1601), M)
    assert flag.detail == (
        "output size 1601 bytes is above the range 100-1600 bytes "
        "(0.25x to 4x the trailing median 400)"
    )


def test_thresholds_are_set_per_behavior() -> None:
    loose = AnomalyThresholds(cost_factor=10, latency_factor=10)
    assert names(RunFacts(cost_usd=0.05, latency_ms=5000), t=loose) == []
    assert names(RunFacts(cost_usd=0.05, latency_ms=5000)) == ["cost", "latency"]


def test_no_medians_yet_means_no_anomaly() -> None:
    facts = RunFacts(cost_usd=100, latency_ms=10**6, output_size=10**6)
    assert detect(T, facts, Medians()) == []
    assert detect(T, facts, Medians.from_dict(None)) == []
    # a zero median (free local model) is no baseline either
    assert detect(T, facts, Medians(cost_usd=0.0)) == []


def test_medians_from_the_ledgers_json() -> None:
    m = Medians.from_dict({"cost_usd": "0.5", "latency_ms": 10, "output_size": None, "runs": 3})
    assert m == Medians(cost_usd=0.5, latency_ms=10.0, output_size=None, runs=3)


def test_run_facts_sum_every_model_call_of_the_step() -> None:
    step = StepResult(
        output="12345",
        summary="",
        completions=[
            completion(cost_usd=0.01, latency_ms=100),
            completion(cost_usd=0.02, latency_ms=50, fell_back=True, transport="anthropic"),
        ],
    )
    facts = RunFacts.from_result(step)
    assert facts.cost_usd == 0.03
    assert facts.latency_ms == 150
    assert facts.output_size == 5
    assert facts.fell_back and "via anthropic" in facts.fallback_detail


def test_an_answer_the_router_did_not_take_as_sent_is_an_anomaly_of_the_run() -> None:
    """A cost the provider reported that is no cost, no usage, a malformed 200: never clean."""
    from dataclasses import replace

    doubted = replace(
        completion(cost_usd=0.002),
        doubts=("openrouter reported cost -0.01, which is not a cost; charged the price table's",),
    )
    step = StepResult(
        output="x" * 400, summary="", completions=[completion(cost_usd=0.01), doubted]
    )
    facts = RunFacts.from_result(step)
    flags = detect(T, facts, M)
    assert [f.name for f in flags] == ["provider_answer"]
    assert "reported cost -0.01" in flags[0].detail
    assert (
        names(RunFacts.from_result(StepResult(output="x" * 400, summary="", completions=[]))) == []
    )
