"""Reading a Work Order for registration: the YAML validated against `cleanday.workorder`, what
registration refuses before anything is stored (literal secrets, unknown secret schemes, unknown
gates, bad cron or time zone, missing entry points), and how versions are told apart."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import ValidationError

from cleanday import bounded_yaml, entrypoints
from cleanday.chain import canonical_json
from cleanday.errors import ConfigError, SecretResolutionError, WorkOrderError, WorkOrderErrors
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


# an ordinary variable name: words of one case (and digits) joined by '_', none of them long,
# e.g. OPENROUTER_API_KEY_PROD2 or CLEANDAY_KEY_TAG_AUDIT_2026
_WORD = r"(?:[A-Z0-9]{1,16}|[a-z0-9]{1,16})"
_NAME_WORDS = re.compile(rf"{_WORD}(?:_{_WORD})*")


def looks_like_secret(value: str) -> bool:
    """A long, high-entropy string with mixed character classes: a credential, not a name."""
    if len(value) < 24 or not re.fullmatch(r"[A-Za-z0-9+/=_.~-]+", value):
        return False
    if _NAME_WORDS.fullmatch(value):
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


class Problems:
    """The refusals found in one Work Order, gathered so that all are reported at once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[WorkOrderError] = []

    def add(self, problem: str, field: str | None = None) -> None:
        self.errors.append(WorkOrderError(self.source, problem, field=field))

    def check(self, check: Callable[..., object], *args: Any) -> None:
        """Run one check that raises `WorkOrderError`, keeping its refusal and going on."""
        try:
            check(*args)
        except WorkOrderErrors as exc:
            self.errors.extend(exc.errors)
        except WorkOrderError as exc:
            self.errors.append(exc)

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise WorkOrderErrors(self.source, self.errors)


def check_work_order(wo: WorkOrder, source: str) -> None:
    """Refusals that need more than the schema: key references, gates, cron, time zone, output
    schema, entry. Every one found is reported, in one `WorkOrderError(s)`."""
    problems = Problems(source)
    problems.check(_check_ref, wo.key.ref, "key.ref", source)
    if isinstance(wo.trigger, WebhookTrigger):
        problems.check(_check_ref, wo.trigger.secret_ref, "trigger.secret_ref", source)
    if isinstance(wo.trigger, CronTrigger):
        fields = wo.trigger.cron.split()
        if len(fields) != 5 or not croniter.is_valid(wo.trigger.cron):
            problems.add(
                f"invalid cron expression {wo.trigger.cron!r}; use five fields "
                "'minute hour day-of-month month day-of-week', e.g. '0 7 * * *'",
                "trigger.cron",
            )
        problems.check(check_timezone, wo.trigger.timezone, source, "trigger.timezone")
    if wo.output_schema is not None:
        problems.check(check_output_schema, wo.output_schema, source)
    for i, gate in enumerate(wo.gates):
        if gate.entry is None and gate.name not in BUILTIN_GATES:
            problems.add(
                f"unknown gate {gate.name!r}; built-in gates are "
                f"{', '.join(sorted(BUILTIN_GATES))}, and a custom gate needs "
                "entry: 'module:function'",
                f"gates[{i}].name",
            )
        if gate.entry is None and gate.name == "schema":
            problems.check(check_schema_gate, wo, gate.options, source, f"gates[{i}]")
        if gate.entry is not None:
            problems.check(check_entry_point, gate.entry, source, f"gates[{i}].entry")
    problems.check(check_entry_point, wo.entry, source, "entry")
    problems.raise_any()


def check_output_schema(schema: dict[str, Any], source: str) -> None:
    """`output_schema` must be a JSON Schema (draft 2020-12) the schema gate can use."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise WorkOrderError(
            source,
            f"not a valid JSON Schema at {where}: {exc.message}; see "
            "https://json-schema.org/understanding-json-schema (e.g. "
            "{type: object, properties: {tags: {type: array}}})",
            field="output_schema",
        ) from None


def check_schema_gate(wo: WorkOrder, options: dict[str, Any], source: str, field: str) -> None:
    """A `schema` gate needs something to check against: `output_schema`, `options.model`
    (a pydantic model) or `options.vocabulary`."""
    if wo.output_schema is None and not options.get("model") and not options.get("vocabulary"):
        raise WorkOrderError(
            source,
            "the schema gate has nothing to check against; declare output_schema (a JSON "
            "Schema) in the Work Order, or give the gate options.model ('module:Model') or "
            "options.vocabulary (a list of allowed values)",
            field=field,
        )
    vocabulary = options.get("vocabulary")
    if vocabulary is not None and not isinstance(vocabulary, list | tuple):
        raise WorkOrderError(
            source, "must be a list of allowed values", field=f"{field}.options.vocabulary"
        )


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
    """The entry point resolves inside the behaviors directory, the built-in package or an
    allowed module (cleanday.entrypoints), found by source location: no step code runs here."""
    try:
        entrypoints.locate(entry)
    except ConfigError as exc:
        raise WorkOrderError(source, str(exc), field=field) from None


def code_hash(wo: WorkOrder) -> str:
    """Hash of the step and custom-gate source files the Work Order names (read, never run):
    when it changes, workers that imported the old code must reload to run the new."""
    digest = hashlib.sha256()
    for entry in [wo.entry, *(g.entry for g in wo.gates if g.entry)]:
        path = entrypoints.source_of(entry)
        digest.update(entry.encode() + b"\0")
        if path is not None:
            digest.update(path.read_bytes())
    return digest.hexdigest()


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


_WORK_ORDER_FIELDS = ("name", "description", "trigger", "reports", "key", "preset", "entry")


def not_a_work_order(text: str) -> str | None:
    """Why a YAML file in a behaviors directory is not a Work Order (a behavior's data, the
    local provider's scripts), or None when it reads as one (or is too broken to tell: then
    registering it reports what is wrong)."""
    try:
        raw = bounded_yaml.load(text)
    except (yaml.YAMLError, bounded_yaml.YamlTooLarge):
        return None
    if isinstance(raw, dict) and sum(f in raw for f in _WORK_ORDER_FIELDS) >= 2:
        return None
    return f"not a Work Order (it has none of {', '.join(_WORK_ORDER_FIELDS)})"


def load_work_order(path: str | Path) -> WorkOrder:
    """Read, validate and check a Work Order file; every refusal is a `WorkOrderError` naming
    the file, the field (with its line) and what is allowed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkOrderError(str(path), f"cannot read the file: {exc.strerror or exc}") from exc
    return parse_work_order(text, str(path))


def parse_work_order(text: str, source: str = "<work order>") -> WorkOrder:
    """Validate Work Order YAML text (from a file or an API body) as `load_work_order` does."""
    # secrets first: a file holding a token is refused before anything echoes its contents
    check_no_secrets(text, source)
    try:
        raw = bounded_yaml.load(text)
    except bounded_yaml.YamlTooLarge as exc:
        raise WorkOrderError(source, str(exc)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise WorkOrderError(source, f"{where}invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise WorkOrderError(source, f"invalid YAML: {exc}") from exc
    except (ValueError, OverflowError) as exc:  # a scalar YAML cannot build: 2026-13-45
        raise WorkOrderError(source, f"invalid YAML value: {exc}") from exc
    if not isinstance(raw, dict):
        raise WorkOrderError(source, "a Work Order is a YAML mapping (name:, description:, ...)")
    try:
        wo = WorkOrder.model_validate(raw)
    except ValidationError as exc:
        problems = Problems(source)
        try:
            root: Any = yaml.compose(text)
        except yaml.YAMLError:
            root = None
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(root, loc)
            where = f" (line {line})" if line else ""
            problems.add(_explain(err) + where, _field_path(loc))
        _check_raw(raw, problems)
        problems.raise_any()
        raise  # unreachable: pydantic reports at least one error
    check_work_order(wo, source)
    return wo


def _check_raw(raw: dict[str, Any], problems: Problems) -> None:
    """With the schema refused, the checks that still make sense on the raw fields (the
    secret references, the output schema), so that one round of fixes is enough."""
    seen = {e.field for e in problems.errors}
    key, trigger = raw.get("key"), raw.get("trigger")
    refs = [
        ("key.ref", key.get("ref") if isinstance(key, dict) else None),
        ("trigger.secret_ref", trigger.get("secret_ref") if isinstance(trigger, dict) else None),
    ]
    for field, ref in refs:
        if isinstance(ref, str) and field not in seen:
            problems.check(_check_ref, ref, field, problems.source)
    schema = raw.get("output_schema")
    if isinstance(schema, dict) and "output_schema" not in seen:
        problems.check(check_output_schema, schema, problems.source)


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("cron", "interval", "webhook") and out == "trigger":
            continue  # the discriminator tag pydantic adds to the location
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "union_tag_invalid":
        return "trigger type must be one of: cron, interval, webhook"
    if kind == "string_pattern_mismatch" and err["loc"] == ("name",):
        return "must be lower_snake_case: a letter, then letters, digits or '_' (2-63 chars)"
    return str(err.get("msg", "invalid value"))


def _line_of(root: Any, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location, if it can be found."""
    node = root
    if node is None:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                key_node = None
                continue
            key_node = next(k for k, v in node.value if v is match)
            line = key_node.start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
    return line
