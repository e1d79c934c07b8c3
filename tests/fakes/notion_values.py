"""Notion's property schemas and property values, as the fake Notion checks and stores them.

A data source's schema is a set of `Prop`s; a page stores one value per property ID in the
shape the API answers with. Requests are checked the way Notion checks them, and refused
with the messages Notion uses ("Status is expected to be select.", "Nope is not a property
that exists.").
"""

from __future__ import annotations

import itertools
import json
import secrets
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from tests.fakes.notion_spec import check_rich_text

# the property types the fake keeps; Notion has a few more (formula, relation, rollup, ...)
VALUE_TYPES = (
    "title",
    "rich_text",
    "number",
    "select",
    "multi_select",
    "status",
    "date",
    "people",
    "files",
    "checkbox",
    "url",
    "email",
    "phone_number",
)
COMPUTED_TYPES = ("created_time", "created_by", "last_edited_time", "last_edited_by")
SCHEMA_TYPES = VALUE_TYPES + COMPUTED_TYPES
NOT_SERVED = ("formula", "relation", "rollup", "unique_id", "verification", "button", "place")

NUMBER_FORMATS = (
    "number",
    "number_with_commas",
    "percent",
    "dollar",
    "euro",
    "pound",
    "yen",
    "rupee",
    "won",
    "yuan",
)
COLORS = ("default", "gray", "brown", "orange", "yellow", "green", "blue", "purple", "pink", "red")
DEFAULT_ANNOTATIONS = {
    "bold": False,
    "italic": False,
    "strikethrough": False,
    "underline": False,
    "code": False,
    "color": "default",
}


class Invalid(Exception):
    """A request Notion refuses with 400 validation_error; the message is Notion's wording."""


def new_id() -> str:
    return str(uuid.uuid4())


def normalize_id(raw: str) -> str | None:
    """A Notion ID with or without dashes, in the dashed form; None if it is not one."""
    compact = raw.replace("-", "").lower()
    if len(compact) != 32 or any(c not in string.hexdigits for c in compact):
        return None
    return f"{compact[:8]}-{compact[8:12]}-{compact[12:16]}-{compact[16:20]}-{compact[20:]}"


_prop_ids = itertools.count(1)


def new_prop_id() -> str:
    # Notion's property IDs are short URL-encoded strings ("%3AUPp"); the title's is "title"
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(4)) + str(next(_prop_ids))


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_when(raw: str) -> datetime | date:
    """An ISO 8601 date or date-time, as a Notion filter or date value takes it."""
    text = raw.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- rich text -------------------------------------------------------------------------------


def rich_text_out(items: list[dict[str, Any]], users: Mapping[str, User]) -> list[dict[str, Any]]:
    """Request rich text items as the API answers them (plain_text, href, annotations)."""
    out: list[dict[str, Any]] = []
    for item in items:
        annotations = {**DEFAULT_ANNOTATIONS, **item.get("annotations", {})}
        if "text" in item:
            link = item["text"].get("link")
            content = item["text"]["content"]
            out.append(
                {
                    "type": "text",
                    "text": {"content": content, "link": link},
                    "annotations": annotations,
                    "plain_text": content,
                    "href": link["url"] if link else None,
                }
            )
        elif "mention" in item:
            mention = item["mention"]
            plain = "@mention"
            if "user" in mention:
                user = users.get(str(mention["user"].get("id", "")))
                plain = f"@{user.name}" if user else "@Unknown user"
            out.append(
                {
                    "type": "mention",
                    "mention": mention,
                    "annotations": annotations,
                    "plain_text": plain,
                    "href": None,
                }
            )
        else:
            expression = item["equation"]["expression"]
            out.append(
                {
                    "type": "equation",
                    "equation": {"expression": expression},
                    "annotations": annotations,
                    "plain_text": expression,
                    "href": None,
                }
            )
    return out


def plain_text(items: list[dict[str, Any]]) -> str:
    return "".join(item.get("plain_text", "") for item in items)


def text_items(content: str) -> list[dict[str, Any]]:
    """Request rich text for a plain string, for the fake's own helpers."""
    return [{"type": "text", "text": {"content": content}}]


# -- people ----------------------------------------------------------------------------------


@dataclass
class User:
    id: str
    name: str
    type: str  # "person" or "bot"
    email: str | None = None

    def partial(self) -> dict[str, Any]:
        return {"object": "user", "id": self.id}

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "object": "user",
            "id": self.id,
            "name": self.name,
            "avatar_url": None,
            "type": self.type,
        }
        if self.type == "person":
            data["person"] = {"email": self.email or f"{self.name.lower()}@example.com"}
        else:
            data["bot"] = {
                "owner": {"type": "workspace", "workspace": True},
                "workspace_name": "cleanday test workspace",
            }
        return data


# -- schemas ---------------------------------------------------------------------------------


@dataclass
class Prop:
    id: str
    name: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    description: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "type": self.type,
            self.type: self.config,
        }

    def option(self, *, name: str | None = None, option_id: str | None = None) -> Any:
        for opt in self.config.get("options", []):
            if (name is not None and opt["name"] == name) or (
                option_id is not None and opt["id"] == option_id
            ):
                return opt
        return None

    def add_option(self, name: str, color: str | None = None) -> dict[str, Any]:
        options = self.config.setdefault("options", [])
        palette = COLORS[1:]
        opt = {
            "id": new_prop_id(),
            "name": name,
            "color": color or palette[len(options) % len(palette)],
            "description": None,
        }
        options.append(opt)
        return opt


def _options(prop_name: str, kind: str, raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise Invalid(f"{prop_name}.{kind}.options should be an array.")
    names: list[dict[str, Any]] = []
    for opt in raw:
        if not isinstance(opt, dict) or not isinstance(opt.get("name"), str):
            raise Invalid(f"{prop_name}.{kind}.options items need a name.")
        _check_option_name(prop_name, opt["name"])
        color = opt.get("color", "default")
        if color not in COLORS:
            raise Invalid(f"{prop_name}.{kind}.options color `{color}` is not a Notion color.")
        names.append({"name": opt["name"], "color": color})
    return names


def _check_option_name(prop_name: str, name: str) -> None:
    if "," in name:
        raise Invalid(f"Option names for {prop_name} cannot contain commas: `{name}`.")
    if len(name) > 100:
        raise Invalid(f"Option names for {prop_name} are at most 100 characters.")


def _default_status(prop: Prop) -> None:
    # what Notion gives a status property created without options
    groups = [
        ("To-do", "gray", "Not started"),
        ("In progress", "blue", "In progress"),
        ("Complete", "green", "Done"),
    ]
    prop.config = {"options": [], "groups": []}
    for group_name, color, option_name in groups:
        opt = prop.add_option(option_name, color="default" if color == "gray" else color)
        prop.config["groups"].append(
            {"id": new_prop_id(), "name": group_name, "color": color, "option_ids": [opt["id"]]}
        )


def property_type(name: str, raw: Any) -> tuple[str, dict[str, Any]]:
    """The type and configuration of a property configuration request."""
    if not isinstance(raw, dict):
        raise _shape(name, "", "an object", raw)
    keys = [k for k in raw if k not in ("type", "name", "description", "id")]
    declared = raw.get("type")
    if declared is not None and declared not in keys:
        keys = [declared] if declared in SCHEMA_TYPES + NOT_SERVED else keys
    if len(keys) != 1:
        raise Invalid(
            f"body failed validation: body.properties.{name} should have exactly one property "
            f"type key, instead had {sorted(keys) or 'none'}."
        )
    kind = keys[0]
    if kind in NOT_SERVED:
        raise Invalid(f"fake Notion: property type {kind} ({name}) is not implemented.")
    if kind not in SCHEMA_TYPES:
        raise Invalid(f"body failed validation: {kind} is not a property type ({name}).")
    config = raw.get(kind, {})
    if not isinstance(config, dict):
        raise Invalid(f"body failed validation: body.properties.{name}.{kind} should be an object.")
    return kind, config


def build_prop(name: str, raw: Any, *, creating: bool, prop_id: str | None = None) -> Prop:
    """A new property from its configuration request (POST databases/data_sources, PATCH)."""
    kind, config = property_type(name, raw)
    prop = Prop(prop_id or ("title" if kind == "title" else new_prop_id()), name, kind)
    if isinstance(raw, dict) and "description" in raw:
        prop.description = raw["description"]
    configure(prop, config, creating=creating)
    return prop


def configure(prop: Prop, config: dict[str, Any], *, creating: bool) -> None:
    kind = prop.type
    if kind == "number":
        fmt = config.get("format", prop.config.get("format", "number"))
        if fmt not in NUMBER_FORMATS:
            raise Invalid(f"{prop.name}.number.format `{fmt}` is not a Notion number format.")
        prop.config = {"format": fmt}
    elif kind in ("select", "multi_select"):
        prop.config.setdefault("options", [])
        for opt in _options(prop.name, kind, config.get("options", [])):
            existing = prop.option(name=opt["name"])
            if existing is None:
                prop.add_option(opt["name"], opt["color"])
            else:
                existing["color"] = opt["color"]
    elif kind == "status":
        if creating and config.get("options"):
            # reference ("Create a database"): only empty status properties can be created
            raise Invalid(
                f"{prop.name}: a status property is created without options; Notion gives it "
                "Not started, In progress and Done."
            )
        if not prop.config:
            _default_status(prop)
        for opt in _options(prop.name, kind, config.get("options", [])):
            if prop.option(name=opt["name"]) is None:
                new = prop.add_option(opt["name"], opt["color"])
                prop.config["groups"][0]["option_ids"].append(new["id"])
    else:
        prop.config = {}


# -- values ----------------------------------------------------------------------------------


def empty_value(prop: Prop) -> Any:
    if prop.type in ("title", "rich_text", "multi_select", "people", "files"):
        return []
    if prop.type == "checkbox":
        return False
    if prop.type == "status":
        return prop.config["options"][0] if prop.config.get("options") else None
    return None


def value_in(prop: Prop, raw: Any, users: Mapping[str, User], *, shown: str | None = None) -> Any:
    """A page property value request, checked against its schema, in the stored shape."""
    name = shown or prop.name
    if not isinstance(raw, dict):
        raise _shape(name, "", "an object", raw)
    kinds = [k for k in raw if k not in ("type", "id")]
    if prop.type in COMPUTED_TYPES:
        raise Invalid(f"{name} is a {prop.type} property, which cannot be set.")
    if kinds != [prop.type] or raw.get("type", prop.type) != prop.type:
        raise Invalid(f"{name} is expected to be {prop.type}.")
    value = raw[prop.type]
    check = _CHECKS[prop.type]
    return check(name, prop, value, users)


def _shape(name: str, where: str, expected: str, value: Any = ...) -> Invalid:
    """Notion's wording for a value of the wrong shape."""
    message = f"body failed validation: body.properties.{name}{where} should be {expected}"
    if value is not ...:
        message += f", instead was `{json.dumps(value)}`"
    return Invalid(message + ".")


def _rich(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    if not isinstance(value, list):
        raise _shape(name, f".{prop.type}", "an array", value)
    problem = check_rich_text(value, ["properties", name, prop.type])
    if problem:
        raise Invalid(problem)
    return rich_text_out(value, users)


def _number(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise _shape(name, ".number", "a number or `null`", value)
    return value


def _choice(name: str, prop: Prop, value: Any) -> Any:
    if not isinstance(value, dict) or not ({"name", "id"} & set(value)):
        raise _shape(name, f".{prop.type}", "an object with a name or an id", value)
    if "id" in value:
        found = prop.option(option_id=value["id"])
        if found is None:
            raise Invalid(f"{name}: select option with id `{value['id']}` does not exist.")
        return found
    option_name = value["name"]
    if not isinstance(option_name, str) or not option_name:
        raise _shape(name, f".{prop.type}.name", "a non-empty string", option_name)
    found = prop.option(name=option_name)
    if found is None:
        if prop.type == "status":
            raise Invalid(f"Invalid status option `{option_name}` for {name}.")
        _check_option_name(name, option_name)
        # Notion adds an option that a page write names and the schema lacks
        found = prop.add_option(option_name, value.get("color"))
    return found


def _select(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    return None if value is None else _choice(name, prop, value)


def _multi(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    if not isinstance(value, list):
        raise _shape(name, ".multi_select", "an array", value)
    return [_choice(name, prop, item) for item in value]


def _date(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("start"), str):
        raise _shape(name, ".date.start", "defined")
    for key in ("start", "end"):
        if value.get(key) is not None:
            try:
                parse_when(value[key])
            except ValueError:
                raise _shape(name, f".date.{key}", "an ISO 8601 date", value[key]) from None
    return {"start": value["start"], "end": value.get("end"), "time_zone": value.get("time_zone")}


def _people(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    if not isinstance(value, list):
        raise _shape(name, ".people", "an array", value)
    out = []
    for item in value:
        user_id = normalize_id(str(item.get("id", ""))) if isinstance(item, dict) else None
        if user_id is None or user_id not in users:
            raise Invalid(f"{name}: user `{item}` is not a member of this workspace.")
        out.append(users[user_id].to_json())
    return out


def _files(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    if not isinstance(value, list):
        raise _shape(name, ".files", "an array", value)
    return value


def _checkbox(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    if not isinstance(value, bool):
        raise _shape(name, ".checkbox", "a boolean", value)
    return value


def _string(name: str, prop: Prop, value: Any, users: Mapping[str, User]) -> Any:
    if value is not None and not isinstance(value, str):
        raise _shape(name, f".{prop.type}", "a string or `null`", value)
    if isinstance(value, str) and len(value) > 2000:
        raise _shape(name, f".{prop.type}.length", "≤ `2000`", len(value))
    return value or None


_CHECKS: dict[str, Callable[[str, Prop, Any, Mapping[str, User]], Any]] = {
    "title": _rich,
    "rich_text": _rich,
    "number": _number,
    "select": _select,
    "status": _select,
    "multi_select": _multi,
    "date": _date,
    "people": _people,
    "files": _files,
    "checkbox": _checkbox,
    "url": _string,
    "email": _string,
    "phone_number": _string,
}


def plain(kind: str, value: Any) -> Any:
    """A stored value as a test reads it: text, number, option name, names, date start, ids."""
    if kind in ("title", "rich_text"):
        return plain_text(value)
    if kind in ("select", "status"):
        return value["name"] if value else None
    if kind == "multi_select":
        return [opt["name"] for opt in value]
    if kind == "date":
        return value["start"] if value else None
    if kind in ("people",):
        return [user["id"] for user in value]
    if kind in ("created_by", "last_edited_by"):
        return value["id"]
    return value
