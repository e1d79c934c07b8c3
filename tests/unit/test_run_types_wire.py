"""The behavior run's data on the wire: tiers and statuses are enums in code, strings in JSON."""

from __future__ import annotations

import json

import pytest
from temporalio.converter import DataConverter

from cleanday.domain import Status, Tier
from cleanday.runtime.converter import DATA_CONVERTER
from cleanday.runtime.types import Binding, RunState

CONVERTERS = {"cleanday": DATA_CONVERTER, "temporal default": DataConverter.default}


def _binding() -> Binding:
    return Binding("notes", Tier.WINGS, Status.QUARANTINED, 3, "env:KEY", 24.0, 120.0)


@pytest.mark.parametrize("name", list(CONVERTERS))
def test_a_binding_goes_out_with_its_tier_and_status_as_the_ledgers_strings(name: str) -> None:
    [payload] = CONVERTERS[name].payload_converter.to_payloads([_binding()])
    body = json.loads(payload.data)
    assert body["tier"] == "Wings" and body["status"] == "quarantined"
    assert type(body["tier"]) is str


@pytest.mark.parametrize("name", list(CONVERTERS))
def test_strings_on_the_wire_come_back_as_enum_members(name: str) -> None:
    converter = CONVERTERS[name].payload_converter
    # as a worker or client from before the enums wrote them: plain strings
    wire = {
        "behavior": "notes",
        "tier": "B",
        "status": "active",
        "preset_version": None,
        "key_ref": "env:KEY",
        "stage_expiry_hours": 24.0,
        "step_timeout_seconds": 120.0,
    }
    [payload] = converter.to_payloads([wire])
    [binding] = converter.from_payloads([payload], [Binding])
    assert binding.tier is Tier.B and binding.status is Status.ACTIVE
    [payload] = converter.to_payloads([RunState(behavior="notes", tier=Tier.C)])
    [state] = converter.from_payloads([payload], [RunState])
    assert state.tier is Tier.C
    [payload] = converter.to_payloads([RunState(behavior="notes")])
    [state] = converter.from_payloads([payload], [RunState])
    assert state.tier is None
