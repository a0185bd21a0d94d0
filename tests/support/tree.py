"""Walk a Dash component tree: tests assert on component ids, types and props, not on str(layout)."""

from __future__ import annotations

from collections.abc import Iterator


def walk(node) -> Iterator:
    """Every component under `node` (itself included), depth first, through `children` and any prop
    holding components (a card header, a column, a list of them)."""
    if node is None or isinstance(node, str | int | float | bool):
        return
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    if not hasattr(node, "to_plotly_json"):
        return
    yield node
    for name in getattr(node, "_prop_names", ()):
        value = getattr(node, name, None)
        if (
            name == "children"
            or hasattr(value, "to_plotly_json")
            or (isinstance(value, list | tuple) and any(hasattr(v, "to_plotly_json") for v in value))
        ):
            yield from walk(value)


def find(node, component_id):
    """The one component with this id (AssertionError when there is none or several)."""
    found = [c for c in walk(node) if getattr(c, "id", None) == component_id]
    assert len(found) == 1, f"{len(found)} components with id {component_id!r}"
    return found[0]


def of_type(node, kind) -> list:
    return [c for c in walk(node) if isinstance(c, kind)]


def text(node) -> str:
    """The text a person reads: every string child in the tree, joined by single spaces."""
    parts = []

    def collect(value):
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            parts.append(str(value))
        elif isinstance(value, list | tuple):
            for v in value:
                collect(v)
        elif hasattr(value, "to_plotly_json"):
            collect(getattr(value, "children", None))
            for name in getattr(value, "_prop_names", ()):
                prop = getattr(value, name, None)
                if name != "children" and hasattr(prop, "to_plotly_json"):
                    collect(prop)

    collect(node)
    return " ".join(" ".join(parts).split())
