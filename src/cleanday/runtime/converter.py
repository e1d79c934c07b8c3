"""Temporal's data converter with dataclass field types resolved once per class.

The default JSON converter decodes a dataclass by resolving its type hints
(`typing.get_type_hints`) for every value: with postponed annotations that re-evaluates each
field's annotation string, for every activity result, workflow input and result, which cost
about 2 ms of a worker's CPU per behavior run. This converter resolves them the first time and
decodes exactly as the default does otherwise; the JSON on the wire is unchanged, so clients
and workers with either converter work together.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, get_type_hints

from temporalio.client import Client
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    value_to_type,
)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, resolved type, init) for each field of a dataclass, resolved once."""
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name], f.init) for f in dataclasses.fields(cls))


class DataclassFields(JSONTypeConverter):
    """Dataclasses from JSON objects as temporalio's value_to_type builds them, with each
    class's field types resolved once; every other type is left to the default."""

    def to_typed_value(self, hint: type, value: Any) -> Any:
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            return JSONTypeConverter.Unhandled
        if not isinstance(value, dict):
            raise TypeError(f"Cannot convert to dataclass {hint}, value is {type(value)} not dict")
        init: dict[str, Any] = {}
        late: dict[str, Any] = {}
        for name, field_type, is_init in _fields(hint):
            if name not in value:  # missing required fields fail at instantiation
                continue
            try:
                converted = value_to_type(field_type, value[name], [self])
            except Exception as err:
                raise TypeError(f"Failed converting field {name} on dataclass {hint}") from err
            (init if is_init else late)[name] = converted
        obj = hint(**init)
        for name, converted in late.items():  # init=False fields, as the default restores them
            object.__setattr__(obj, name, converted)
        return obj


class PayloadConverter(CompositePayloadConverter):
    """The default payload converters, the JSON one decoding dataclasses with DataclassFields."""

    def __init__(self) -> None:
        super().__init__(
            *(
                JSONPlainPayloadConverter(custom_type_converters=[DataclassFields()])
                if isinstance(c, JSONPlainPayloadConverter)
                else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=PayloadConverter
)


def with_converter(client: Client) -> Client:
    """A client on `client`'s connection whose payload converter is PayloadConverter.

    Only a client on the default payload converter is changed, and only that: its codec and
    failure converter stay. A client with a payload converter of its own is returned as is.
    """
    converter = client.data_converter
    if converter.payload_converter_class is not DefaultPayloadConverter:
        return client
    config = client.config()
    config["data_converter"] = dataclasses.replace(
        converter, payload_converter_class=PayloadConverter
    )
    return Client(**config)
