"""What Slack checks of a message's Block Kit blocks and its metadata before posting it.

The 2021 description types `blocks` as a loose array of objects with a `type`; Slack's
current Block Kit reference is stricter, and a message it refuses fails with
`invalid_blocks` and messages like "[ERROR] must be more than 0 characters
[json-pointer:/blocks/0/text/text]". The limits here are the reference's for the blocks an
alert or a digest uses (section, header, context, divider, actions, rich_text, image,
markdown); other block types pass unchecked.
"""

from __future__ import annotations

import re
from typing import Any

MAX_BLOCKS = 50
KNOWN_BLOCKS = frozenset(
    {
        "section",
        "header",
        "divider",
        "context",
        "actions",
        "image",
        "rich_text",
        "markdown",
        "input",
        "file",
        "video",
        "table",
    }
)
EVENT_TYPE = re.compile(r"^[A-Za-z0-9_]+$")


def _problem(message: str, at: str) -> str:
    return f"[ERROR] {message} [json-pointer:{at}]"


def _text_object(
    value: Any, at: str, errors: list[str], *, max_len: int, plain_only: bool = False
) -> None:
    if not isinstance(value, dict):
        errors.append(_problem("must be a text object", at))
        return
    kind = value.get("type")
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if kind not in allowed:
        errors.append(_problem(f"must be one of {', '.join(allowed)}", f"{at}/type"))
    text = value.get("text")
    if not isinstance(text, str) or not text:
        errors.append(_problem("must be more than 0 characters", f"{at}/text"))
    elif len(text) > max_len:
        errors.append(_problem(f"must be less than {max_len + 1} characters", f"{at}/text"))


def _element(value: Any, at: str, errors: list[str]) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        errors.append(_problem("must provide an element type", at))
        return
    if value["type"] == "button":
        _text_object(value.get("text"), f"{at}/text", errors, max_len=75, plain_only=True)
        url = value.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > 3000):
            errors.append(_problem("must be a string of at most 3000 characters", f"{at}/url"))
        if value.get("style") not in (None, "primary", "danger"):
            errors.append(_problem("must be primary or danger", f"{at}/style"))


def block_errors(blocks: Any) -> list[str]:
    """Slack's `invalid_blocks` messages for these blocks; empty if they would be accepted."""
    if not isinstance(blocks, list):
        return [_problem("must be an array", "/blocks")]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(_problem(f"no more than {MAX_BLOCKS} items allowed", "/blocks"))
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(_problem("must provide a block type", at))
            continue
        kind = block["type"]
        if kind not in KNOWN_BLOCKS:
            errors.append(_problem(f"unsupported type: {kind}", f"{at}/type"))
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255:
                errors.append(_problem("must be at most 255 characters", f"{at}/block_id"))
            elif block_id in seen_ids:
                errors.append(_problem(f"duplicate block_id {block_id}", f"{at}/block_id"))
            else:
                seen_ids.add(block_id)
        if kind == "section":
            fields = block.get("fields")
            if "text" not in block and not fields:
                errors.append(_problem("must provide text or fields", at))
            if "text" in block:
                _text_object(block["text"], f"{at}/text", errors, max_len=3000)
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > 10:
                    errors.append(_problem("no more than 10 items allowed", f"{at}/fields"))
                else:
                    for j, f in enumerate(fields):
                        _text_object(f, f"{at}/fields/{j}", errors, max_len=2000)
            if "accessory" in block:
                _element(block["accessory"], f"{at}/accessory", errors)
        elif kind == "header":
            _text_object(block.get("text"), f"{at}/text", errors, max_len=150, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(_problem("must have 1 to 10 items", f"{at}/elements"))
            else:
                for j, element in enumerate(elements):
                    if isinstance(element, dict) and element.get("type") == "image":
                        continue
                    _text_object(element, f"{at}/elements/{j}", errors, max_len=3000)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                errors.append(_problem("must have 1 to 25 items", f"{at}/elements"))
            else:
                for j, element in enumerate(elements):
                    _element(element, f"{at}/elements/{j}", errors)
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text or len(text) > 12000:
                errors.append(_problem("must be 1 to 12000 characters", f"{at}/text"))
        elif kind == "image":
            if not (block.get("image_url") or block.get("slack_file")):
                errors.append(_problem("must provide image_url or slack_file", at))
            if not isinstance(block.get("alt_text"), str):
                errors.append(_problem("must provide alt_text", f"{at}/alt_text"))
        elif kind == "rich_text" and not isinstance(block.get("elements"), list):
            errors.append(_problem("must provide elements", f"{at}/elements"))
    return errors


def metadata_error(metadata: Any) -> str | None:
    """Slack's error code for a message's `metadata`, or None if it is well formed."""
    if not isinstance(metadata, dict):
        return "invalid_metadata_format"
    event_type = metadata.get("event_type")
    payload = metadata.get("event_payload")
    if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
        return "invalid_metadata_schema"
    if not isinstance(payload, dict):
        return "invalid_metadata_schema"
    return None
