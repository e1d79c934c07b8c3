"""What registration refuses in a Work Order before anything is stored, and how versions are told
apart: literal secrets, unknown secret schemes, unknown gates, bad cron or time zone, missing entry
points."""

from __future__ import annotations

import hashlib
import importlib
import math
import re
from collections import Counter
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from cleanday.chain import canonical_json
from cleanday.errors import SecretResolutionError, WorkOrderError
from cleanday.secrets import check_reference, split_reference
from cleanday.workorder import BUILTIN_GATES, CronTrigger, WebhookTrigger, WorkOrder

# Shapes of real credentials. A Work Order names a key by reference (env:NAME); one of these
# anywhere in the file means someone pasted the secret itself.
_TOKEN_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an OpenRouter API key", re.compile(r"sk-or-[A-Za-z0-9_-]{16,}")),
    ("an Anthropic API key", re.compile(r"sk-ant-[A-Za-z0-9_-]{16,}")),
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Notion token", re.compile(r"\bntn_[A-Za-z0-9]{20,}")),
    ("a Notion integration secret", re.compile(r"\bsecret_[A-Za-z0-9]{30,}")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("an AWS access key id", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("a bearer token", re.compile(r"\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)


def check_no_secrets(text: str, source: str) -> None:
    """Refuse text holding a token-shaped string; the message gives the line, never the token."""
    for what, pattern in _TOKEN_SHAPES:
        m = pattern.search(text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            raise WorkOrderError(
                source,
                f"line {line} holds what looks like a literal secret ({what}); a Work Order "
                "names its key by reference only: put the secret in an environment variable "
                "or secret manager and write key.ref: env:NAME",
            )


def looks_like_secret(value: str) -> bool:
    """A long, high-entropy string with mixed character classes: a credential, not a name."""
    if len(value) < 24 or not re.fullmatch(r"[A-Za-z0-9+/=_.~-]+", value):
        return False
    classes = sum(
        bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")
    )
    if classes < 3:
        return False
    counts = Counter(value)
    entropy = -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())
    return entropy >= 3.5


def _check_ref(ref: str, field: str, source: str) -> None:
    """A reference (`cleanday.secrets`), not a literal secret, in a scheme this process knows."""
    parts = split_reference(ref)
    if parts is None or looks_like_secret(parts[1]):
        raise WorkOrderError(
            source,
            "must be a reference such as env:NAME or file:/path, not a literal secret; put "
            "the secret in the environment and reference it",
            field=field,
        )
    try:
        check_reference(ref)
    except SecretResolutionError as exc:
        raise WorkOrderError(source, str(exc), field=field) from None


def check_work_order(wo: WorkOrder, source: str) -> None:
    """Refusals that need more than the schema: key references, gates, cron, time zone, entry."""
    _check_ref(wo.key.ref, "key.ref", source)
    if isinstance(wo.trigger, WebhookTrigger):
        _check_ref(wo.trigger.secret_ref, "trigger.secret_ref", source)
    if isinstance(wo.trigger, CronTrigger):
        fields = wo.trigger.cron.split()
        if len(fields) != 5 or not croniter.is_valid(wo.trigger.cron):
            raise WorkOrderError(
                source,
                f"invalid cron expression {wo.trigger.cron!r}; use five fields "
                "'minute hour day-of-month month day-of-week', e.g. '0 7 * * *'",
                field="trigger.cron",
            )
        check_timezone(wo.trigger.timezone, source, "trigger.timezone")
    for i, gate in enumerate(wo.gates):
        if gate.entry is None and gate.name not in BUILTIN_GATES:
            raise WorkOrderError(
                source,
                f"unknown gate {gate.name!r}; built-in gates are "
                f"{', '.join(sorted(BUILTIN_GATES))}, and a custom gate needs "
                "entry: 'module:function'",
                field=f"gates[{i}].name",
            )
        if gate.entry is not None:
            check_entry_point(gate.entry, source, f"gates[{i}].entry")
    check_entry_point(wo.entry, source, "entry")


def check_timezone(name: str, source: str, field: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise WorkOrderError(
            source,
            f"unknown time zone {name!r}; use an IANA name such as 'UTC', 'Europe/Berlin' "
            "or 'America/New_York'",
            field=field,
        ) from exc


def check_entry_point(entry: str, source: str, field: str) -> None:
    module_name, _, func = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkOrderError(
            source,
            f"entry point {entry!r}: module {module_name!r} cannot be imported ({exc}); "
            "name an importable module, e.g. 'behaviors.tag_audit:run'",
            field=field,
        ) from exc
    if not callable(getattr(module, func, None)):
        raise WorkOrderError(
            source,
            f"entry point {entry!r}: module {module_name!r} has no function {func!r}",
            field=field,
        )


def content_hash(wo: WorkOrder) -> str:
    """Hash of the validated content: reformatting or comments are not a new version."""
    return hashlib.sha256(canonical_json(wo.model_dump(mode="json")).encode()).hexdigest()


def preset_hash(wo: WorkOrder) -> str:
    return hashlib.sha256(canonical_json(wo.preset.model_dump(mode="json")).encode()).hexdigest()


def key_already_bound(source: str, ref: str, other: str) -> str:
    return (
        f"work order {source}: key {ref} is already bound to behavior {other}; "
        "each behavior needs its own key"
    )
