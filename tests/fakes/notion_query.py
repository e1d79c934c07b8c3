"""Filters and sorts of `POST /v1/data_sources/{id}/query`, as Notion evaluates them.

Filters follow the reference's PropertyFilter, TimestampFilter and compound `and`/`or`
(nested at most two levels deep). A filter on a property whose type it does not fit is
refused, as Notion refuses it. Timestamps compare at the minute Notion keeps them at, which
is why a read-back filtered on `last_edited_time` has to overlap the previous one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.fakes.notion_values import Invalid, Prop, parse_when

TEXT_CONDITIONS = (
    "equals",
    "does_not_equal",
    "contains",
    "does_not_contain",
    "starts_with",
    "ends_with",
    "is_empty",
    "is_not_empty",
)
NUMBER_CONDITIONS = (
    "equals",
    "does_not_equal",
    "greater_than",
    "less_than",
    "greater_than_or_equal_to",
    "less_than_or_equal_to",
    "is_empty",
    "is_not_empty",
)
DATE_CONDITIONS = (
    "equals",
    "before",
    "after",
    "on_or_before",
    "on_or_after",
    "this_week",
    "past_week",
    "past_month",
    "past_year",
    "next_week",
    "next_month",
    "next_year",
    "is_empty",
    "is_not_empty",
)
CONDITIONS: dict[str, tuple[str, ...]] = {
    "title": TEXT_CONDITIONS,
    "rich_text": TEXT_CONDITIONS,
    "url": TEXT_CONDITIONS,
    "email": TEXT_CONDITIONS,
    "phone_number": TEXT_CONDITIONS,
    "number": NUMBER_CONDITIONS,
    "checkbox": ("equals", "does_not_equal"),
    "select": ("equals", "does_not_equal", "is_empty", "is_not_empty"),
    "status": ("equals", "does_not_equal", "is_empty", "is_not_empty"),
    "multi_select": ("contains", "does_not_contain", "is_empty", "is_not_empty"),
    "people": ("contains", "does_not_contain", "is_empty", "is_not_empty"),
    "created_by": ("contains", "does_not_contain", "is_empty", "is_not_empty"),
    "last_edited_by": ("contains", "does_not_contain", "is_empty", "is_not_empty"),
    "files": ("is_empty", "is_not_empty"),
    "date": DATE_CONDITIONS,
    "created_time": DATE_CONDITIONS,
    "last_edited_time": DATE_CONDITIONS,
}


@dataclass
class Row:
    """A page as a query sees it: values by property ID, and its (minute) timestamps."""

    page_id: str
    values: dict[str, Any]
    created_time: datetime
    last_edited_time: datetime
    created_by: str
    last_edited_by: str
    order: int


Lookup = Callable[[str], Prop | None]


def compile_filter(raw: Any, lookup: Lookup, now: datetime) -> Callable[[Row], bool]:
    """A predicate for a query's `filter`, or Invalid with Notion's reason."""
    return _compile(raw, lookup, now, depth=0)


def _compile(raw: Any, lookup: Lookup, now: datetime, depth: int) -> Callable[[Row], bool]:
    if not isinstance(raw, dict):
        raise Invalid("body failed validation: body.filter should be an object.")
    for group in ("and", "or"):
        if group in raw:
            if len(raw) != 1:
                raise Invalid(f"body failed validation: body.filter.{group} stands alone.")
            if depth >= 2:
                raise Invalid("body failed validation: compound filters nest at most two deep.")
            parts = raw[group]
            if not isinstance(parts, list):
                raise Invalid(f"body failed validation: body.filter.{group} should be an array.")
            tests = [_compile(p, lookup, now, depth + 1) for p in parts]
            if group == "and":
                return lambda row: all(t(row) for t in tests)
            return lambda row: any(t(row) for t in tests)
    if "timestamp" in raw:
        kind = raw["timestamp"]
        if kind not in ("created_time", "last_edited_time") or kind not in raw:
            raise Invalid(
                "body failed validation: body.filter.timestamp should be `created_time` or "
                f"`last_edited_time` with a condition under that key, instead was `{kind}`."
            )
        condition = _condition(kind, raw[kind], kind)
        return lambda row: _date_matches(getattr(row, kind), condition, now)
    if "property" not in raw:
        raise Invalid("body failed validation: body.filter should have a property or timestamp.")
    prop = lookup(str(raw["property"]))
    if prop is None:
        raise Invalid(f"Could not find property with name or id: {raw['property']}")
    keys = [k for k in raw if k not in ("property", "type")]
    if len(keys) != 1 or keys[0] not in CONDITIONS:
        raise Invalid(f"body failed validation: body.filter for {prop.name} needs one condition.")
    kind = keys[0]
    if kind != prop.type:
        raise Invalid(
            f"body failed validation: filter on {prop.name} is for a {kind} property, but "
            f"{prop.name} is a {prop.type} property."
        )
    condition = _condition(kind, raw[kind], prop.name)
    return _property_test(prop, condition, now)


def _condition(kind: str, raw: Any, shown: str) -> tuple[str, Any]:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise Invalid(f"body failed validation: the {kind} filter on {shown} needs one condition.")
    ((op, value),) = raw.items()
    if op not in CONDITIONS[kind]:
        raise Invalid(
            f"body failed validation: `{op}` is not a {kind} filter condition ({shown}); use one "
            f"of {', '.join(CONDITIONS[kind])}."
        )
    if op in ("is_empty", "is_not_empty") and value is not True:
        raise Invalid(f"body failed validation: {kind}.{op} should be `true` ({shown}).")
    valued = op not in ("is_empty", "is_not_empty")
    if (
        kind == "number"
        and valued
        and (isinstance(value, bool) or not isinstance(value, float | int))
    ):
        raise Invalid(f"body failed validation: number.{op} should be a number ({shown}).")
    if kind == "checkbox" and not isinstance(value, bool):
        raise Invalid(f"body failed validation: checkbox.{op} should be a boolean ({shown}).")
    if kind in TEXT_KINDS + CHOICE_KINDS + ("people",) and valued and not isinstance(value, str):
        raise Invalid(f"body failed validation: {kind}.{op} should be a string ({shown}).")
    if kind in DATE_KINDS and op in ("equals", "before", "after", "on_or_before", "on_or_after"):
        try:
            value = parse_when(str(value))
        except ValueError:
            raise Invalid(
                f"body failed validation: {kind}.{op} should be an ISO 8601 date, instead was "
                f"`{value!r}` ({shown})."
            ) from None
    return op, value


TEXT_KINDS = ("title", "rich_text", "url", "email", "phone_number")
CHOICE_KINDS = ("select", "status", "multi_select")
DATE_KINDS = ("date", "created_time", "last_edited_time")


def _text_of(kind: str, value: Any) -> str:
    if kind in ("title", "rich_text"):
        return "".join(item.get("plain_text", "") for item in value)
    return value or ""


def _property_test(prop: Prop, condition: tuple[str, Any], now: datetime) -> Callable[[Row], bool]:
    op, expected = condition
    kind = prop.type

    def test(row: Row) -> bool:
        if kind == "created_time":
            return _date_matches(row.created_time, condition, now)
        if kind == "last_edited_time":
            return _date_matches(row.last_edited_time, condition, now)
        if kind in ("created_by", "last_edited_by"):
            ids = [row.created_by if kind == "created_by" else row.last_edited_by]
            return _list_matches(ids, op, expected)
        value = row.values.get(prop.id)
        if kind in TEXT_KINDS:
            return _text_matches(_text_of(kind, value), op, expected)
        if kind == "number":
            return _number_matches(value, op, expected)
        if kind == "checkbox":
            return (bool(value) == expected) == (op == "equals")
        if kind in ("select", "status"):
            name = value["name"] if value else None
            if op == "is_empty":
                return name is None
            if op == "is_not_empty":
                return name is not None
            return (name == expected) == (op == "equals")
        if kind == "multi_select":
            return _list_matches([opt["name"] for opt in value or []], op, expected)
        if kind == "people":
            return _list_matches([user["id"] for user in value or []], op, expected)
        if kind == "files":
            return bool(value) == (op == "is_not_empty")
        return _date_matches(_date_start(value), condition, now)

    return test


def _text_matches(text: str, op: str, expected: Any) -> bool:
    if op == "is_empty":
        return text == ""
    if op == "is_not_empty":
        return text != ""
    if op == "equals":
        return text == expected
    if op == "does_not_equal":
        return text != expected
    # contains, starts_with and ends_with ignore case in Notion
    low, want = text.lower(), str(expected).lower()
    if op == "contains":
        return want in low
    if op == "does_not_contain":
        return want not in low
    if op == "starts_with":
        return low.startswith(want)
    return low.endswith(want)


def _number_matches(value: Any, op: str, expected: Any) -> bool:
    if op == "is_empty":
        return value is None
    if op == "is_not_empty":
        return value is not None
    if op == "does_not_equal":
        return value != expected
    if value is None:
        return False
    return {
        "equals": value == expected,
        "greater_than": value > expected,
        "less_than": value < expected,
        "greater_than_or_equal_to": value >= expected,
        "less_than_or_equal_to": value <= expected,
    }[op]


def _list_matches(items: list[str], op: str, expected: Any) -> bool:
    if op == "is_empty":
        return not items
    if op == "is_not_empty":
        return bool(items)
    if op == "contains":
        return expected in items
    return expected not in items


def _date_start(value: Any) -> datetime | date | None:
    if not value:
        return None
    return parse_when(value["start"])


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _date_matches(value: datetime | date | None, condition: tuple[str, Any], now: datetime) -> bool:
    op, expected = condition
    if op == "is_empty":
        return value is None
    if op == "is_not_empty":
        return value is not None
    if value is None:
        return False
    if op in ("equals", "before", "after", "on_or_before", "on_or_after"):
        if isinstance(expected, datetime):
            left, right = _as_datetime(value), expected
            cmp: Any = (left > right) - (left < right)
        else:
            # a date-only filter value compares whole days
            day = value.astimezone(UTC).date() if isinstance(value, datetime) else value
            cmp = (day > expected) - (day < expected)
        return {
            "equals": cmp == 0,
            "before": cmp < 0,
            "after": cmp > 0,
            "on_or_before": cmp <= 0,
            "on_or_after": cmp >= 0,
        }[op]
    at = _as_datetime(value)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    windows = {
        "past_week": (now - timedelta(days=7), now),
        "past_month": (now - timedelta(days=30), now),
        "past_year": (now - timedelta(days=365), now),
        "next_week": (now, now + timedelta(days=7)),
        "next_month": (now, now + timedelta(days=30)),
        "next_year": (now, now + timedelta(days=365)),
        "this_week": (today - timedelta(days=today.weekday()), today + timedelta(days=7)),
    }
    start, end = windows[op]
    return start <= at <= end


# -- sorts -----------------------------------------------------------------------------------


def sort_rows(rows: list[Row], sorts: list[dict[str, Any]], lookup: Lookup) -> list[Row]:
    """Rows in the order of `sorts` (first sort first); empty values last either way.

    Without sorts, rows come in the order they were created: Notion documents no default, and
    creation order is what its table view shows for rows added by the API.
    """
    ordered = sorted(rows, key=lambda r: r.order)
    for spec in reversed(sorts):
        descending = spec["direction"] == "descending"
        if "timestamp" in spec:
            stamp: str = spec["timestamp"]
            ordered.sort(key=lambda r: _stamp(r, stamp), reverse=descending)
            continue
        prop = lookup(spec["property"])
        if prop is None:
            raise Invalid(f"Could not find sort property with name or id: {spec['property']}")
        keyed = [(r, _sort_key(prop, r)) for r in ordered]
        present = [pair for pair in keyed if pair[1] is not None]
        missing = [pair[0] for pair in keyed if pair[1] is None]
        present.sort(key=lambda pair: pair[1], reverse=descending)
        ordered = [pair[0] for pair in present] + missing
    return ordered


def _stamp(row: Row, which: str) -> datetime:
    return row.created_time if which == "created_time" else row.last_edited_time


def _sort_key(prop: Prop, row: Row) -> Any:
    kind = prop.type
    if kind == "created_time":
        return row.created_time
    if kind == "last_edited_time":
        return row.last_edited_time
    if kind in ("created_by", "last_edited_by"):
        return row.created_by if kind == "created_by" else row.last_edited_by
    value = row.values.get(prop.id)
    if kind in TEXT_KINDS:
        text = _text_of(kind, value)
        return text.lower() if text else None
    if kind == "number":
        return value
    if kind == "checkbox":
        return bool(value)
    if kind in ("select", "status", "multi_select"):
        # Notion orders options as the schema lists them, not by name
        first = value[0] if kind == "multi_select" and value else value
        if not first:
            return None
        names = [opt["id"] for opt in prop.config.get("options", [])]
        return names.index(first["id"]) if first["id"] in names else len(names)
    if kind == "date":
        start = _date_start(value)
        return None if start is None else _as_datetime(start)
    if kind == "people":
        return value[0]["name"].lower() if value else None
    return None
