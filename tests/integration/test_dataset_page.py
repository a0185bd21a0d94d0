"""The Dataset page in a browser: loads cleanly, filters, and keeps its state in the URL."""

from __future__ import annotations

import pytest
from dash.testing.wait import until

from tests.integration import WAIT_S
from tests.integration.conftest import console_errors

pytestmark = pytest.mark.browser


def thumbs(dash_duo):
    return dash_duo.find_elements(".stimulus-thumb")


def test_dataset_page_loads_filters_and_restores_from_url(dash_duo, dash_app):
    dash_duo.start_server(dash_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/dataset?dataset=mini")
    dash_duo.wait_for_contains_text("#dataset-gallery-title", "24 of all categories", timeout=WAIT_S)
    assert len(thumbs(dash_duo)) == 24
    dash_duo.wait_for_element("#dataset-corr .main-svg", timeout=WAIT_S)
    assert dash_duo.find_element("#dataset-synthetic").text == "synthetic"

    dash_duo.select_dcc_dropdown("#dataset-category", value="Cars")
    dash_duo.wait_for_contains_text("#dataset-gallery-title", "6 of Cars", timeout=WAIT_S)
    assert len(thumbs(dash_duo)) == 6
    until(lambda: "category=Cars" in dash_duo.driver.current_url, timeout=WAIT_S)
    url = dash_duo.driver.current_url

    dash_duo.driver.get(f"{dash_duo.server_url}/dataset?dataset=mini")
    dash_duo.wait_for_contains_text("#dataset-gallery-title", "24 of", timeout=WAIT_S)
    dash_duo.driver.get(url)
    dash_duo.wait_for_contains_text("#dataset-gallery-title", "6 of Cars", timeout=WAIT_S)
    assert len(thumbs(dash_duo)) == 6

    thumbs(dash_duo)[0].click()
    dash_duo.wait_for_element("#dataset-modal-body img", timeout=WAIT_S)
    # The title is read once the modal has faded in (Selenium reads no text from an element still invisible).
    dash_duo.wait_for_contains_text("#dataset-modal-title", "Cars", timeout=WAIT_S)
    assert console_errors(dash_duo) == []


def test_bad_url_parameter_shows_a_friendly_message(dash_duo, dash_app):
    dash_duo.start_server(dash_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/dataset?dataset=mini&site=%27%3B%20DROP%20TABLE%20sites")
    dash_duo.wait_for_contains_text("#friendly-error", "unknown site", timeout=WAIT_S)
    assert console_errors(dash_duo) == []


def test_overview_lists_the_dataset(dash_duo, dash_app):
    dash_duo.start_server(dash_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/")
    dash_duo.wait_for_contains_text("#overview-build", "dataset:mini", timeout=WAIT_S)
    assert console_errors(dash_duo) == []


def test_missing_database_says_how_to_build_it(dash_duo, tmp_path, monkeypatch):
    import importlib

    monkeypatch.setenv("UNITSCOPE_DB", str(tmp_path / "not-built-yet.duckdb"))
    dash_duo.start_server(importlib.import_module("app").app)
    for path in ("/", "/dataset", "/sites"):
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}{path}")
        dash_duo.wait_for_contains_text("#empty-no-database", "./scripts/up.sh", timeout=WAIT_S)
    dash_duo.wait_for_contains_text("#build-status", "no database yet", timeout=WAIT_S)
    assert console_errors(dash_duo) == []
