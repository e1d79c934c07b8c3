"""YAML read within bounds: a Work Order (or any operator file) is refused, fast and in little
memory, when its text is too long or when its aliases would expand it beyond a node budget.

PyYAML composes an alias as a second reference to the node it names, so a "billion laughs" file
of a kilobyte composes cheaply; what explodes is everything that walks the data afterwards
(validation, JSON dumps, the ledger's copy). The expanded size is counted on the composed graph,
once per distinct node, before anything is constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

from cleanday.errors import YamlTooLarge

MAX_BYTES = 256 * 1024
"""A Work Order longer than this is refused (the shipped ones are under 4 KiB)."""

MAX_NODES = 20_000
"""The most scalars, sequences and mappings the document may hold with its aliases expanded."""


def load(text: str, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """The data of a single YAML document, as `yaml.safe_load` gives it, within the bounds.

    Raises `YamlTooLarge` over a bound and `yaml.YAMLError` for text that is not YAML.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise YamlTooLarge(
            f"the document is {size:,} bytes, over the limit of {max_bytes:,}; a Work Order "
            "declares a behavior, its data belongs in files its step code reads"
        )
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = expanded_size(node, max_nodes)
        if expanded > max_nodes:
            raise YamlTooLarge(
                f"the document expands to more than {max_nodes:,} values through its aliases "
                "(&anchor / *alias); write the values out, or use fewer aliases"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node, limit: int) -> int:
    """How many nodes `root` holds with every alias expanded, counted up to just over `limit`.

    Each distinct node is sized once (memoised), so the count costs the composed graph's size,
    not the expansion's.
    """
    sizes: dict[int, int] = {}
    # iterative post-order walk: deep nesting must not hit Python's recursion limit
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in on_path:  # a recursive alias: infinite expansion
                return limit + 1
            on_path.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        on_path.discard(key)
        total = 1
        for c in children:
            total += sizes.get(id(c), limit + 1)
            if total > limit:
                return limit + 1
        sizes[key] = total
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
