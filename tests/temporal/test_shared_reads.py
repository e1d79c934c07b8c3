"""SharedReads: runs starting together share ledger reads, yet no answer predates its question."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cleanday.runtime.activities import SharedReads


class _Ledger:
    """A behavior state that changes when told, read with a delay so reads overlap."""

    def __init__(self) -> None:
        self.tier = "C"
        self.reads = 0
        self.gate = asyncio.Event()

    async def read(self, behavior: str) -> dict[str, Any]:
        self.reads += 1
        tier = self.tier  # the read's moment: when the ledger looks, not when it answers
        await self.gate.wait()
        return {"behavior": behavior, "tier": tier}


async def test_callers_arriving_together_share_one_read() -> None:
    ledger = _Ledger()
    reads = SharedReads(ledger.read)
    calls = [asyncio.create_task(reads.get("digest")) for _ in range(20)]
    await asyncio.sleep(0)
    ledger.gate.set()
    answers = await asyncio.gather(*calls)
    assert ledger.reads == 1
    assert {a["tier"] for a in answers} == {"C"}


async def test_a_caller_arriving_during_a_read_gets_a_later_read_that_sees_a_demotion() -> None:
    ledger = _Ledger()
    reads = SharedReads(ledger.read)
    first = asyncio.create_task(reads.get("digest"))
    while ledger.reads < 1:  # until the first read has looked at the ledger: tier C
        await asyncio.sleep(0)
    ledger.tier = "B"  # a demotion lands while that read is in flight
    late = [asyncio.create_task(reads.get("digest")) for _ in range(5)]
    await asyncio.sleep(0)
    ledger.gate.set()
    assert (await first)["tier"] == "C"
    assert {a["tier"] for a in await asyncio.gather(*late)} == {"B"}
    assert ledger.reads == 2  # the five late callers shared the second read


async def test_a_failed_read_reaches_its_callers_and_the_next_caller_reads_again() -> None:
    attempts = 0

    async def flaky(behavior: str) -> dict[str, Any]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("ledger down")
        return {"tier": "C"}

    reads = SharedReads(flaky)
    with pytest.raises(ConnectionError):
        await reads.get("digest")
    assert (await reads.get("digest"))["tier"] == "C"


async def test_a_cancelled_caller_does_not_cancel_the_read_others_wait_for() -> None:
    ledger = _Ledger()
    reads = SharedReads(ledger.read)
    doomed = asyncio.create_task(reads.get("digest"))
    kept = asyncio.create_task(reads.get("digest"))
    await asyncio.sleep(0)
    doomed.cancel()
    ledger.gate.set()
    assert (await kept)["tier"] == "C"
