"""The bare side of bench/governed_bench.py: a workflow whose only activity is the model call."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn(name="BareCall")
class BareCall:
    @workflow.run
    async def run(self) -> str:
        result: str = await workflow.execute_activity(
            "bare_call",
            workflow.info().workflow_id,
            start_to_close_timeout=timedelta(seconds=30),
            result_type=str,
        )
        return result
