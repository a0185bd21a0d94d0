"""The Dash renderer's protocol, as a client sees it: the layout's components, the callbacks and their
inputs, and the page router's output (what `deploy/loadcheck.py`'s simulated users and `deploy/fuzz.py`
speak to a running site)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


def id_key(component_id: Any) -> str:
    """A component id as Dash writes it in callback specs (dict ids: compact JSON with sorted keys)."""
    if isinstance(component_id, dict):
        return json.dumps(component_id, sort_keys=True, separators=(",", ":"))
    return str(component_id)


ROUTER_OUTPUT = ".._pages_content.children..._pages_store.data.."
#: Page query parameters the pages understand (filters); fuzzing also sends unknown ones.
PAGE_PARAMS = (
    "dataset",
    "model",
    "region",
    "site",
    "rank",
    "layer",
    "top",
    "category",
    "object",
    "page",
    "metric",
    "variant",
    "condition",
    "a",
    "b",
)


class Transport(Protocol):
    def get(self, path: str) -> tuple[int, bytes]: ...

    def post_json(self, path: str, payload: dict) -> tuple[int, bytes]: ...


def parse_outputs(output: str) -> list[dict]:
    """`..a.children...b.figure..` or `a.children` -> [{id, property}, ...] (dict ids decoded)."""
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    out = []
    for part in parts:
        cid, _, prop = part.rpartition(".")
        out.append({"id": json.loads(cid) if cid.startswith("{") else cid, "property": prop})
    return out


def walk_components(tree: Any, into: dict[str, dict]) -> dict[str, dict]:
    """Every component with an id in a layout tree: id key -> its props (with `_type`)."""
    if isinstance(tree, list):
        for item in tree:
            walk_components(item, into)
    elif isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and "type" in tree:
            if "id" in props:
                into[id_key(props["id"])] = {**props, "_type": tree.get("type")}
            for value in props.values():
                if isinstance(value, (dict, list)):
                    walk_components(value, into)
    return into


def iter_props(tree: Any):
    """The props of every component in a layout tree, with or without an id."""
    if isinstance(tree, list):
        for item in tree:
            yield from iter_props(item)
    elif isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and "type" in tree:
            yield props
        for value in (props if isinstance(props, dict) and "type" in tree else tree).values():
            if isinstance(value, (dict, list)):
                yield from iter_props(value)


def hrefs(tree: Any, prefix: str = "/") -> set[str]:
    """Every `href` in a layout tree that starts with `prefix`."""
    return {p["href"] for p in iter_props(tree) if isinstance(p.get("href"), str) and p["href"].startswith(prefix)}


def _matches(pattern: dict, cid: Any) -> bool:
    if not isinstance(cid, dict) or set(cid) != set(pattern):
        return False
    return all(isinstance(v, list) or cid[k] == v for k, v in pattern.items())


def resolve(dep: dict, props: dict[str, dict]) -> dict | list | None:
    """One input/state entry of a callback request from the current props (None: not on the page)."""
    raw = dep["id"]
    prop = dep["property"]
    if raw.startswith("{"):
        pattern = json.loads(raw)
        if any(isinstance(v, list) for v in pattern.values()):
            found = [
                {"id": p["id"], "property": prop, **({"value": p[prop]} if prop in p else {})}
                for p in props.values()
                if _matches(pattern, p.get("id"))
            ]
            if any(v == ["ALL"] for v in pattern.values()):
                return found
            return None  # MATCH/ALLSMALLER: only used by clientside callbacks here
        raw = id_key(pattern)
    comp = props.get(raw)
    if comp is None:
        return None
    entry = {"id": comp["id"], "property": prop}
    if prop in comp:
        entry["value"] = comp[prop]
    return entry


@dataclass
class Callback:
    output: str
    inputs: list[dict]
    state: list[dict]
    prevent_initial_call: bool

    @classmethod
    def from_spec(cls, spec: dict) -> Callback:
        return cls(spec["output"], spec["inputs"], spec["state"], bool(spec.get("prevent_initial_call")))

    def input_keys(self) -> set[str]:
        return {f"{d['id']}.{d['property']}" for d in self.inputs}

    def payload(self, props: dict[str, dict], changed: list[str]) -> dict | None:
        inputs = [resolve(d, props) for d in self.inputs]
        state = [resolve(d, props) for d in self.state]
        if any(v is None for v in inputs + state):
            return None
        outputs = parse_outputs(self.output)
        if any(isinstance(v, list) for o in outputs if isinstance(o["id"], dict) for v in o["id"].values()):
            return None
        return {
            "output": self.output,
            "outputs": outputs if self.output.startswith("..") else outputs[0],
            "inputs": inputs,
            "state": state,
            "changedPropIds": changed,
        }


class DashSite:
    """The callback map of a Dash app, read once from `/_dash-dependencies` (server-side callbacks only)."""

    def __init__(self, transport: Transport):
        status, body = transport.get("/_dash-dependencies")
        if status != 200:
            raise RuntimeError(f"/_dash-dependencies answered {status}: {body[:200]!r}")
        specs = json.loads(body)
        self.callbacks = [
            Callback.from_spec(s) for s in specs if not s.get("clientside_function") and s["output"] != ROUTER_OUTPUT
        ]
        status, body = transport.get("/_dash-layout")
        shell = json.loads(body) if status == 200 else {}
        self.pages = sorted(
            {h.split("?")[0] for h in hrefs(shell) if not h.startswith(("/export", "/assets", "/_", "/stimulus"))}
            | {"/"}
        )
