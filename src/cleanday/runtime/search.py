"""Temporal search attributes on runs: CleandayBehavior, CleandayTier and CleandayOutcome, so a
gate-failed run can be found with the Temporal UI's filters (`CleandayOutcome = "failed"`).

A server refuses a workflow that sets an attribute it does not know, so the workflow sets them
only when its RunRequest says the server has them (`RunRequest.search_attributes`), which the
process that starts the run checks once (`ready`). `ensure` registers them on a server that
lets a client do so (the dev server of `cleanday up`, which the worker asks at start).
"""

from __future__ import annotations

import logging
import time

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

log = logging.getLogger("cleanday.search")

BEHAVIOR = SearchAttributeKey.for_keyword("CleandayBehavior")
TIER = SearchAttributeKey.for_keyword("CleandayTier")
OUTCOME = SearchAttributeKey.for_keyword("CleandayOutcome")
NAMES = (BEHAVIOR.name, TIER.name, OUTCOME.name)

# a server found without them is asked again after this long (`cleanday up` may add them)
RECHECK_SECONDS = 30.0
_ready: dict[tuple[str, str], bool] = {}
_checked: dict[tuple[str, str], float] = {}


async def _known(client: Client) -> set[str]:
    answer = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return set(answer.custom_attributes)


async def ensure(client: Client) -> bool:
    """Register the three attributes where missing; False (logged) when the server refuses,
    e.g. a production server where only an administrator may add them."""
    try:
        missing = [n for n in NAMES if n not in await _known(client)]
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=client.namespace,
                    search_attributes={
                        n: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for n in missing
                    },
                )
            )
            log.info("search attributes registered: %s", ", ".join(missing))
    except Exception as exc:  # the runs still run, without the attributes
        log.warning(
            "search attributes %s not registered (%s): add them as Keyword with "
            "`temporal operator search-attribute create`",
            ", ".join(NAMES),
            exc,
        )
        return False
    _ready[_key(client)] = True
    return True


async def ready(client: Client) -> bool:
    """Whether the server knows the three attributes (kept once true; a no is asked again after
    RECHECK_SECONDS, so starting runs does not cost a question each)."""
    key = _key(client)
    if _ready.get(key) or time.monotonic() < _checked.get(key, float("-inf")):
        return _ready.get(key, False)
    try:
        _ready[key] = set(NAMES) <= await _known(client)
    except Exception:  # a server that cannot list them (the time-skipping test server)
        _ready[key] = False
    _checked[key] = time.monotonic() + RECHECK_SECONDS
    return _ready[key]


def _key(client: Client) -> tuple[str, str]:
    return (client.service_client.config.target_host, client.namespace)
