"""An unknown address gets Unitscope's own 404 page: it names the path and links back."""

from __future__ import annotations

import importlib
import json

import dash
import dash_bootstrap_components

from tests.support.tree import of_type as _of_type


def page():
    importlib.import_module("app")
    return importlib.import_module("pages.not_found_404")


def _links(component) -> dict[str, str]:
    found = {}

    def walk(node):
        if isinstance(node, dash.dcc.Link):
            found[node.href] = node.children
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list | tuple) else [children]:
            if child is not None and not isinstance(child, str):
                walk(child)

    walk(component)
    return found


def test_not_found_names_the_path_and_links_to_every_page():
    mod = page()
    layout = mod.not_found("/sites/extra")
    assert [c.children for c in layout.children[1].children if isinstance(c, dash.html.Code)] == ["/sites/extra"]
    links = _links(layout)
    assert links["/"] == "Overview"
    shown = {p["relative_path"] for p in dash.page_registry.values() if not p.get("hidden")}
    assert {"/", "/dataset", "/sites", "/unit"} <= shown <= set(links)
    assert "/404" not in links


def test_not_found_is_the_router_fallback_and_stays_out_of_the_navbar():
    page()
    entry = next(p for m, p in dash.page_registry.items() if m.split(".")[-1] == "not_found_404")
    assert entry["hidden"]
    from components.shell import create_shell

    navbar = [link.children for link in _of_type(create_shell(dash.page_registry), dash_bootstrap_components.NavLink)]
    assert "Overview" in navbar and "Page not found" not in navbar


def test_layout_outside_a_callback_still_renders():
    assert page().layout().children[1].children == ["There is no such page."]


def test_router_serves_it_for_an_unknown_path():
    app = importlib.import_module("app")
    client = app.server.test_client()
    client.get("/nonexistent")  # the first request registers the pages router callback
    body = {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": "/sites/extra"},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
        "changedPropIds": ["_pages_location.pathname"],
        "state": [],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200
    text = json.dumps(response.get_json())  # the response escapes "/" as "\\/"
    assert "/sites/extra" in text and "Page not found" in text and "404 - Page not found" not in text
