"""Notion's published API description, corrected where the 2025-09-03 reference says otherwise.

The fake Notion validates every request against `../shared/specs/notion-openapi.json`. That
description lags the API in places (`../shared/specs/README.md` lists them); each correction
below is one small function that says what the reference has instead. Everything else is
the description as published.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from tests.fakes.serving import SPECS_DIR

NOTION_SPEC = SPECS_DIR / "notion-openapi.json"

RICH_TEXT_LIMIT = 2000  # characters of one text object (reference: "Request limits")
ARRAY_LIMIT = 100  # rich text items, blocks per request, multi-select options, people


def _rich_text_request() -> dict[str, Any]:
    # The description allows only {"text": ..., "type": "text"}, closed to anything else. The
    # reference's RichTextItemRequest also takes `annotations`, and mention and equation items;
    # and a text object's content is at most 2,000 characters.
    annotations = {
        "type": "object",
        "properties": {
            "bold": {"type": "boolean"},
            "italic": {"type": "boolean"},
            "strikethrough": {"type": "boolean"},
            "underline": {"type": "boolean"},
            "code": {"type": "boolean"},
            "color": {"type": "string"},
        },
        "additionalProperties": False,
    }
    text = {
        "type": "object",
        "required": ["text"],
        "properties": {
            "type": {"const": "text"},
            "text": {
                "type": "object",
                "required": ["content"],
                "properties": {
                    "content": {"type": "string", "maxLength": RICH_TEXT_LIMIT},
                    "link": {
                        "type": ["object", "null"],
                        "properties": {"url": {"type": "string"}},
                        "required": ["url"],
                    },
                },
                "additionalProperties": False,
            },
            "annotations": annotations,
        },
        "additionalProperties": False,
    }
    mention = {
        "type": "object",
        "required": ["mention"],
        "properties": {
            "type": {"const": "mention"},
            "mention": {"type": "object"},
            "annotations": annotations,
        },
        "additionalProperties": False,
    }
    equation = {
        "type": "object",
        "required": ["equation"],
        "properties": {
            "type": {"const": "equation"},
            "equation": {
                "type": "object",
                "required": ["expression"],
                "properties": {"expression": {"type": "string"}},
            },
            "annotations": annotations,
        },
        "additionalProperties": False,
    }
    return {"oneOf": [text, mention, equation]}


TEXT_BLOCKS = (
    "paragraph",
    "bulleted_list_item",
    "numbered_list_item",
    "quote",
    "toggle",
    "heading_1",
    "heading_2",
    "heading_3",
    "to_do",
    "callout",
)


def _block_request() -> dict[str, Any]:
    # The description knows paragraph and bulleted_list_item blocks only, without `color` or
    # `children`. The reference's BlockObjectRequest has headings, to-dos, numbered items,
    # quotes, toggles, callouts and dividers too (and many more this fake does not serve).
    rich = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/richTextRequest"},
        "maxItems": ARRAY_LIMIT,
    }
    variants: list[dict[str, Any]] = []
    for name in TEXT_BLOCKS:
        content: dict[str, Any] = {
            "rich_text": rich,
            "color": {"type": "string"},
            "children": {"type": "array", "maxItems": ARRAY_LIMIT},
        }
        if name == "to_do":
            content["checked"] = {"type": "boolean"}
        if name.startswith("heading_"):
            content["is_toggleable"] = {"type": "boolean"}
        if name == "callout":
            content["icon"] = {"type": "object"}
        variants.append(
            {
                "type": "object",
                "required": [name],
                "properties": {
                    "object": {"const": "block"},
                    "type": {"const": name},
                    name: {
                        "type": "object",
                        "required": ["rich_text"],
                        "properties": content,
                        "additionalProperties": False,
                    },
                },
                "additionalProperties": False,
            }
        )
    variants.append(
        {
            "type": "object",
            "required": ["divider"],
            "properties": {
                "object": {"const": "block"},
                "type": {"const": "divider"},
                "divider": {"type": "object", "maxProperties": 0},
            },
            "additionalProperties": False,
        }
    )
    return {"oneOf": variants}


def _icon_request() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "required": ["emoji"],
                "properties": {"type": {"const": "emoji"}, "emoji": {"type": "string"}},
            },
            {
                "type": "object",
                "required": ["external"],
                "properties": {
                    "type": {"const": "external"},
                    "external": {"type": "object", "required": ["url"]},
                },
            },
        ],
    }


def _cover_request() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "properties": {
            "type": {"const": "external"},
            "external": {"type": "object", "required": ["url"]},
        },
    }


def _rich_text_array() -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"$ref": "#/components/schemas/richTextRequest"},
        "maxItems": ARRAY_LIMIT,
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _version_param() -> dict[str, Any]:
    return {"$ref": "#/components/parameters/notionVersion"}


def _fix_rich_text_and_blocks(spec: dict[str, Any]) -> None:
    spec["components"]["schemas"]["richTextRequest"] = _rich_text_request()
    spec["components"]["schemas"]["blockObjectRequest"] = _block_request()


def _fix_page_parent(spec: dict[str, Any]) -> None:
    # README: a page in a data source has the parent {"type": "data_source_id", ...} (the
    # reference's POST /v1/pages, what notion-client 3.x sends). The description offers a
    # database_id parent only; the reference still accepts that one for a database with a
    # single data source, so it stays.
    spec["components"]["schemas"]["parentRequest"]["oneOf"].append(
        {
            "type": "object",
            "properties": {
                "type": {"const": "data_source_id"},
                "data_source_id": {"type": "string"},
            },
            "required": ["data_source_id"],
        }
    )


def _fix_page_create(spec: dict[str, Any]) -> None:
    # The description types `children` items, `icon` and `cover` as strings; the reference's
    # POST /v1/pages takes block objects, and icon and cover objects.
    body = spec["paths"]["/v1/pages"]["post"]["requestBody"]["content"]["application/json"]
    props = body["schema"]["properties"]
    props["children"] = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/blockObjectRequest"},
        "maxItems": ARRAY_LIMIT,
    }
    props["icon"] = _icon_request()
    props["cover"] = _cover_request()


def _fix_page_update(spec: dict[str, Any]) -> None:
    # The description allows emoji icons only; the reference takes external ones too, and null.
    body = spec["paths"]["/v1/pages/{page_id}"]["patch"]["requestBody"]
    props = body["content"]["application/json"]["schema"]["properties"]
    props["icon"] = _icon_request()
    props["cover"] = _cover_request()


def _fix_sorts(spec: dict[str, Any]) -> None:
    # The description's sortObject requires a property; the reference's query sorts may be
    # timestamp sorts ({"timestamp": "last_edited_time", "direction": ...}) instead.
    spec["components"]["schemas"]["sortObject"] = {
        "oneOf": [
            {
                "type": "object",
                "required": ["property", "direction"],
                "properties": {
                    "property": {"type": "string"},
                    "direction": {"enum": ["ascending", "descending"]},
                },
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["timestamp", "direction"],
                "properties": {
                    "timestamp": {"enum": ["created_time", "last_edited_time"]},
                    "direction": {"enum": ["ascending", "descending"]},
                },
                "additionalProperties": False,
            },
        ]
    }


def _fix_data_source_create(spec: dict[str, Any]) -> None:
    # README: POST /v1/data_sources adds a data source to a database, so its parent is
    # {"type": "database_id", "database_id": ...}, not the description's page.
    body = spec["paths"]["/v1/data_sources"]["post"]["requestBody"]
    body["content"]["application/json"]["schema"]["properties"]["parent"] = {
        "type": "object",
        "required": ["database_id"],
        "properties": {"type": {"const": "database_id"}, "database_id": {"type": "string"}},
    }


def _add_database_create_and_update(spec: dict[str, Any]) -> None:
    # README: the description has neither POST /v1/databases (create a database with its
    # initial data source) nor PATCH /v1/databases/{database_id}. Both follow the reference's
    # "Create a database" and "Update a database" (body keys as notion-client 3.1 sends them).
    parent = {
        "oneOf": [
            {
                "type": "object",
                "required": ["page_id"],
                "properties": {"type": {"const": "page_id"}, "page_id": {"type": "string"}},
            },
            {
                "type": "object",
                "required": ["type", "workspace"],
                "properties": {"type": {"const": "workspace"}, "workspace": {"const": True}},
            },
        ]
    }
    create = {
        "type": "object",
        "required": ["parent"],
        "properties": {
            "parent": parent,
            "title": _rich_text_array(),
            "description": _rich_text_array(),
            "is_inline": {"type": "boolean"},
            "initial_data_source": {
                "type": "object",
                "properties": {"properties": {"type": "object"}},
                "additionalProperties": False,
            },
            "icon": _icon_request(),
            "cover": _cover_request(),
        },
        "additionalProperties": False,
    }
    update = {
        "type": "object",
        "properties": {
            "parent": parent,
            "title": _rich_text_array(),
            "description": _rich_text_array(),
            "is_inline": {"type": "boolean"},
            "icon": _icon_request(),
            "cover": _cover_request(),
            "in_trash": {"type": "boolean"},
            "archived": {"type": "boolean"},
            "is_locked": {"type": "boolean"},
        },
        "additionalProperties": False,
    }
    db_id = {"name": "database_id", "in": "path", "required": True, "schema": {"type": "string"}}
    spec["paths"]["/v1/databases"] = {
        "post": {
            "operationId": "create-a-database",
            "parameters": [_version_param()],
            "requestBody": _json_body(create),
        }
    }
    spec["paths"]["/v1/databases/{database_id}"]["patch"] = {
        "operationId": "update-a-database",
        "parameters": [db_id, _version_param()],
        "requestBody": _json_body(update),
    }


CORRECTIONS = (
    _fix_rich_text_and_blocks,
    _fix_page_parent,
    _fix_page_create,
    _fix_page_update,
    _fix_sorts,
    _fix_data_source_create,
    _add_database_create_and_update,
)


@lru_cache(maxsize=2)
def notion_description(path: Path = NOTION_SPEC) -> dict[str, Any]:
    """The published description with the corrections above applied (parsed once)."""
    spec: dict[str, Any] = json.loads(path.read_text())
    spec = copy.deepcopy(spec)
    for correct in CORRECTIONS:
        correct(spec)
    return spec


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    parameters: tuple[dict[str, Any], ...]
    body: Draft202012Validator | None


@lru_cache(maxsize=2)
def operations(path: Path = NOTION_SPEC) -> tuple[Operation, ...]:
    spec = notion_description(path)
    ops: list[Operation] = []
    for template, item in spec["paths"].items():
        pattern = re.compile(
            "^" + re.sub(r"\\\{([a-z_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        )
        for method, op in item.items():
            if method not in ("get", "post", "patch", "delete", "put"):
                continue
            params = tuple(_resolve(spec, p) for p in op.get("parameters", []))
            schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {})).get(
                "schema"
            )
            validator = (
                Draft202012Validator({**schema, "components": spec["components"]})
                if schema is not None
                else None
            )
            ops.append(
                Operation(op["operationId"], method.upper(), template, pattern, params, validator)
            )
    # literal segments win over parameters ("/v1/users/me" before "/v1/users/{user_id}")
    ops.sort(key=lambda o: (o.template.count("{"), -len(o.template)))
    return tuple(ops)


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    resolved: dict[str, Any] = target
    return resolved


def match(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    """The operation serving `method path`, with its path parameters; None if none does."""
    for op in operations():
        if op.method != method:
            continue
        found = op.pattern.match(path)
        if found:
            return op, found.groupdict()
    return None


def path_exists(path: str) -> bool:
    return any(op.pattern.match(path) for op in operations())


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        return int(raw) if re.fullmatch(r"-?\d+", raw) else raw
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    return raw


def check_parameters(op: Operation, query: dict[str, list[str]]) -> str | None:
    """Query parameters against their schemas, as Notion words the failure."""
    for param in op.parameters:
        if param.get("in") != "query":
            continue
        name = param["name"]
        schema = param.get("schema", {})
        values = query.get(name)
        if not values:
            if param.get("required"):
                return f"query failed validation: query.{name} should be defined"
            continue
        value: Any = (
            [_coerce(v, schema.get("items", {})) for v in values]
            if schema.get("type") == "array"
            else _coerce(values[-1], schema)
        )
        error = best_match(Draft202012Validator(schema).iter_errors(value))
        if error is not None:
            return f"query failed validation: query.{name} {error.message}"
    return None


def check_body(op: Operation, body: Any) -> str | None:
    if op.body is None:
        return None
    return _problem(best_match(op.body.iter_errors(body)), [])


@lru_cache(maxsize=2)
def _rich_text_validator(path: Path = NOTION_SPEC) -> Draft202012Validator:
    spec = notion_description(path)
    schema = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/richTextRequest"},
        "maxItems": ARRAY_LIMIT,
    }
    return Draft202012Validator({**schema, "components": spec["components"]})


def check_rich_text(items: Any, where: list[str | int]) -> str | None:
    """Rich text in a page property value: the body schema leaves property values open, but
    Notion holds them to the same rich text rules (and limits) as everywhere else."""
    return _problem(best_match(_rich_text_validator().iter_errors(items)), where)


def _problem(error: ValidationError | None, prefix: list[str | int]) -> str | None:
    if error is None:
        return None
    path = [*prefix, *error.absolute_path]
    steps = (f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    where = "body" + "".join(steps)
    if error.validator in ("maxLength", "maxItems") and isinstance(error.instance, str | list):
        return (
            f"body failed validation: {where}.length should be ≤ `{error.validator_value}`, "
            f"instead was `{len(error.instance)}`."
        )
    message = error.message if len(error.message) <= 300 else error.message[:300] + "…"
    return f"body failed validation: {where} {message}"
