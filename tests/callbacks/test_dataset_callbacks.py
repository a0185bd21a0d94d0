"""Dataset page callbacks and state helpers, called directly (no browser)."""

from __future__ import annotations

import importlib
from urllib.parse import parse_qs

import pytest

from tests.support.tree import find, text


@pytest.fixture
def page(app_env):
    importlib.import_module("app")  # the Dash app must exist before pages register
    return importlib.import_module("pages.dataset")


def test_layout_restores_state_from_query(page):
    layout = page.layout(dataset="mini", category="Cars", region="IT", site="IT-005", page="1")
    assert find(layout, "dataset-category").value == "Cars"
    assert find(layout, "dataset-site").value == "IT-005"
    assert find(layout, "dataset-region").value == "IT"
    assert find(layout, "dataset-page").active_page == 1
    assert [o["value"] for o in find(layout, "dataset-object").options] == [page.ALL_VALUE, "cars0", "cars1"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"dataset": "nope"}, "unknown dataset"),
        ({"category": "'; DROP TABLE stimuli; --"}, "unknown category"),
        ({"site": "../../etc/passwd"}, "unknown site"),
        ({"region": "V1"}, "unknown region"),
        ({"page": "999"}, "out of range"),
        ({"page": "abc"}, "whole number"),
    ],
)
def test_bad_url_parameters_give_a_friendly_message(page, params, message):
    layout = page.layout(**params)
    assert layout.id == "friendly-error"
    assert message in text(layout)


def test_gallery_filters_and_pages(page):
    thumbs, title, n_pages, active = page.gallery_view("mini", "Cars", page.ALL_VALUE, 1)
    assert len(thumbs) == 6 and n_pages == 1 and active == 1
    assert "6 of Cars" in title
    thumbs, _, _, _ = page.gallery_view("mini", page.ALL_VALUE, page.ALL_VALUE, 1)
    assert len(thumbs) == 24
    ids = {t.id["index"] for t in thumbs}
    assert ids == {f"stim{i:03d}" for i in range(24)}


def test_object_options_follow_the_category(page):
    options, value = page.update_objects("Cars", "mini", "faces0")
    assert [o["value"] for o in options] == [page.ALL_VALUE, "cars0", "cars1"]
    assert value == page.ALL_VALUE


def test_url_query_carries_the_filters(page):
    query = page.update_url("mini", "Cars", "cars1", 1, "IT", "IT-005")
    assert parse_qs(query.lstrip("?")) == {
        "dataset": ["mini"],
        "category": ["Cars"],
        "object": ["cars1"],
        "region": ["IT"],
        "site": ["IT-005"],
    }
    assert "category" not in page.update_url("mini", page.ALL_VALUE, page.ALL_VALUE, 1, "V4", None)


def test_figures_callbacks_return_figures(page):
    corr = page.update_correlations("mini", "V4")
    assert corr.data[0].z.shape == (4, 4)
    rf = page.update_rf_map("mini", "V4-001")
    assert rf.data[0].z.shape == (16, 16)
