"""Loading a ladder policy from YAML; a wrong one is refused saying what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanday.domain import IdlePolicy, Policy
from cleanday.errors import ConfigError
from cleanday.policy import load_policy


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strict.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_policy_file_sets_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
timezone: Europe/Berlin
clean_day_threshold: 10
wings_threshold: 40
idle: break
quarantine_failures: 2
quarantine_window_days: 5
counted_anomalies: [cost, latency]
idle_by_behavior:
  webhook_logger: skip
""",
    )
    assert load_policy(path) == Policy(
        timezone="Europe/Berlin",
        clean_day_threshold=10,
        wings_threshold=40,
        idle=IdlePolicy.BREAK,
        quarantine_failures=2,
        quarantine_window_days=5,
        counted_anomalies=frozenset({"cost", "latency"}),
        idle_by_behavior={"webhook_logger": IdlePolicy.SKIP},
    )


def test_fields_left_out_keep_the_brief_defaults(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "timezone: America/New_York\n"))
    assert policy == Policy(timezone="America/New_York")
    assert policy.counted_anomalies is None  # every anomaly counts
    assert load_policy(write(tmp_path, "")) == Policy()


def test_an_empty_anomaly_list_means_no_anomaly_counts(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "counted_anomalies: []\n"))
    assert not policy.anomaly_counts("cost")


@pytest.mark.parametrize(
    ("text", "field", "allowed"),
    [
        ("timezone: Mars/Olympus\n", "timezone", "IANA"),
        ("timezone: 3\n", "timezone", "IANA"),
        ("idle: sometimes\n", "idle", "skip, break"),
        ("clean_day_threshold: 0\n", "clean_day_threshold", "at least 1"),
        ("wings_threshold: many\n", "wings_threshold", "whole number"),
        ("quarantine_failures: true\n", "quarantine_failures", "whole number"),
        ("quarantine_window_days: -7\n", "quarantine_window_days", "at least 1"),
        ("counted_anomalies: cost\n", "counted_anomalies", "list"),
        ("idle_by_behavior: [a]\n", "idle_by_behavior", "skip, break"),
        ("idle_by_behavior: {seo: never}\n", "idle_by_behavior.seo", "skip, break"),
        ("clean_days: 7\n", "clean_days", "allowed fields"),
    ],
)
def test_a_wrong_field_is_refused_naming_file_field_and_what_is_allowed(
    tmp_path: Path, text: str, field: str, allowed: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_policy(path)
    message = str(refused.value)
    assert str(path) in message
    assert f": {field}: " in message
    assert allowed in message


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_policy(write(tmp_path, "- timezone\n"))


def test_invalid_yaml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as refused:
        load_policy(path)
    assert str(path) in str(refused.value)


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")
