"""Slack's published Web API description, and the arguments a method call is checked against.

`../shared/specs/slack-web-openapi-v2.json` (OpenAPI 2.0, 2021) describes each method's
arguments as form fields. Slack takes the same arguments from the query string, a form body
or a JSON body, so a call's arguments are merged and each one checked against its
declaration: present when required, of its type (form values are strings: "1", "true" and
"12.5" are a boolean and a number). Arguments Slack added after 2021 are declared in
`ADDED_ARGUMENTS`, following Slack's current method reference, as the specs README says.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.fakes.serving import SPECS_DIR

SLACK_SPEC = SPECS_DIR / "slack-web-openapi-v2.json"

# arguments sent as JSON text in a form, or as JSON values in a JSON body
JSON_ARGUMENTS = frozenset({"blocks", "attachments", "metadata"})

# Slack's current reference (docs.slack.dev/reference/methods/...) has these; the 2021
# description does not
ADDED_ARGUMENTS: dict[str, dict[str, dict[str, Any]]] = {
    "chat.postMessage": {
        "metadata": {"type": "string"},  # {"event_type", "event_payload"}, since 2022
        "markdown_text": {"type": "string"},
    },
    "chat.update": {
        "metadata": {"type": "string"},
        "reply_broadcast": {"type": "boolean"},
        "file_ids": {"type": "string"},
    },
    "conversations.history": {"include_all_metadata": {"type": "boolean"}},
    "conversations.list": {"team_id": {"type": "string"}},
}


@lru_cache(maxsize=2)
def slack_description(path: Path = SLACK_SPEC) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@lru_cache(maxsize=64)
def arguments(method: str, path: Path = SLACK_SPEC) -> dict[str, dict[str, Any]] | None:
    """A method's declared arguments by name (the token aside); None for an unknown method."""
    item = slack_description(path)["paths"].get(f"/{method}")
    if item is None:
        return None
    declared: dict[str, dict[str, Any]] = {}
    for op in item.values():
        for param in op.get("parameters", []):
            # the description puts the token in a `token` header; Slack reads it from the
            # Authorization header (what slack-sdk sends) or a `token` argument
            if param["name"] == "token":
                continue
            declared[param["name"]] = {
                "type": param.get("type", "string"),
                "required": bool(param.get("required")),
            }
    for name, decl in ADDED_ARGUMENTS.get(method, {}).items():
        declared.setdefault(name, {"type": decl["type"], "required": False})
    return declared


def coerce(name: str, kind: str, value: Any) -> tuple[Any, str | None]:
    """A form or JSON argument as its declared type, or the reason it is not one."""
    if name in JSON_ARGUMENTS:
        if isinstance(value, str):
            try:
                return json.loads(value), None
            except json.JSONDecodeError:
                return value, f"invalid JSON for argument: {name}"
        return value, None
    if kind == "boolean":
        if isinstance(value, bool):
            return value, None
        text = str(value).lower()
        if text in ("1", "true"):
            return True, None
        if text in ("0", "false", ""):
            return False, None
        return value, f"expected a boolean for argument: {name}"
    if kind in ("number", "integer"):
        if isinstance(value, bool):
            return value, f"expected a {kind} for argument: {name}"
        if isinstance(value, int | float):
            return value, None
        pattern = r"-?\d+" if kind == "integer" else r"-?\d+(\.\d+)?"
        if re.fullmatch(pattern, str(value)):
            # a number sent as text stays text: it is usually a ts, compared to the digit
            return (int(value) if kind == "integer" else str(value)), None
        return value, f"expected a {kind} for argument: {name}"
    if not isinstance(value, str | int | float):
        return value, f"expected a string for argument: {name}"
    return str(value), None


def check_arguments(
    method: str, args: dict[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """(typed arguments, problems, unknown argument names) of a call to `method`.

    Slack ignores arguments it does not know; they are returned so a test can see a typo.
    """
    declared = arguments(method) or {}
    typed: dict[str, Any] = {}
    problems: list[str] = []
    for name, decl in declared.items():
        if name not in args or args[name] is None:
            if decl["required"]:
                problems.append(f"missing required field: {name}")
            continue
        value, problem = coerce(name, decl["type"], args[name])
        if problem:
            problems.append(problem)
        typed[name] = value
    unknown = sorted(set(args) - set(declared) - {"token"})
    return typed, problems, unknown
