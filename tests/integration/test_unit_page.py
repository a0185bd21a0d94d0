"""The Unit page in a browser: loads cleanly, a filter change updates the URL (keeping the unit), reopening
the URL restores the view, its exports are valid files, and a bad parameter shows the friendly message."""

from __future__ import annotations

import io
import urllib.request

import pandas as pd
import pytest
from dash.testing.wait import until

from tests.integration import WAIT_S
from tests.integration.conftest import console_errors

pytestmark = pytest.mark.browser


@pytest.fixture
def results_app(results_env):
    import importlib

    return importlib.import_module("app").app


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read()


def test_unit_page_filters_url_and_exports(dash_duo, results_app):
    dash_duo.start_server(results_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/unit?dataset=mini&model=toy&region=IT")
    dash_duo.wait_for_element("#unit-scatter .main-svg", timeout=WAIT_S)
    dash_duo.wait_for_element("#unit-categories .main-svg", timeout=WAIT_S)
    dash_duo.wait_for_contains_text("#unit-sites", "IT-", timeout=WAIT_S)
    # the default unit is written into the URL, so the view is a link
    until(lambda: "layer_idx=" in dash_duo.driver.current_url and "site=IT-" in dash_duo.driver.current_url, WAIT_S)
    unit_query = dash_duo.driver.current_url.split("?", 1)[1]
    unit_params = [p for p in unit_query.split("&") if p.split("=")[0] in ("layer_idx", "channel", "y", "x")]

    # a filter change (region) reopens the page on the same unit, against a V4 site
    v4 = next(el for el in dash_duo.find_elements("#unit-f-region label") if el.text == "V4")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", v4)
    until(lambda: "region=V4" in dash_duo.driver.current_url and "site=V4-" in dash_duo.driver.current_url, WAIT_S)
    assert all(p in dash_duo.driver.current_url for p in unit_params)
    dash_duo.wait_for_contains_text("#unit-scatter .gtitle", "V4-", timeout=WAIT_S)
    url = dash_duo.driver.current_url

    # reopening the link restores the view
    dash_duo.driver.get(f"{dash_duo.server_url}/")
    dash_duo.wait_for_element("#overview-build", timeout=WAIT_S)
    dash_duo.driver.get(url)
    dash_duo.wait_for_element("#unit-scatter .main-svg", timeout=WAIT_S)
    assert dash_duo.find_element("#unit-f-region input:checked").get_attribute("value") == "V4"
    site = url.split("site=")[1].split("&")[0]
    dash_duo.wait_for_contains_text("#unit-scatter .gtitle", site, timeout=WAIT_S)

    # the export menus carry the page's query: the figure as PNG, the table as CSV
    button = dash_duo.find_element("#export-unit-scatter button")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    dash_duo.driver.execute_script("arguments[0].click();", button)  # a scrolled card may sit under the navbar
    link = dash_duo.wait_for_element("#export-unit-scatter a.export-link", timeout=WAIT_S)
    main = dash_duo.driver.current_window_handle
    dash_duo.driver.execute_script("arguments[0].click();", link)  # the open menu may sit under the navbar
    href = link.get_attribute("href")
    for handle in dash_duo.driver.window_handles:
        if handle != main:
            dash_duo.driver.switch_to.window(handle)
            dash_duo.driver.close()
    dash_duo.driver.switch_to.window(main)
    assert "/export/unit-scatter.png?" in href and all(p in href for p in unit_params)
    assert _fetch(href)[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(io.BytesIO(_fetch(f"{dash_duo.server_url}/export/unit-sites.csv?{url.split('?', 1)[1]}")))
    assert list(table.columns) == ["site_id", "region", "rank", "layer_rank", "featuremap_best", "r"]
    assert len(table) > 0
    assert console_errors(dash_duo) == []


def test_sites_table_links_to_the_unit_page(dash_duo, results_app):
    dash_duo.start_server(results_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/sites?dataset=mini&model=toy&region=IT&site=IT-006")
    link = dash_duo.wait_for_element("#sites-topk a[href^='/unit?']", timeout=WAIT_S)
    href = link.get_attribute("href")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", link)
    until(lambda: dash_duo.driver.current_url.startswith(f"{dash_duo.server_url}/unit?"), WAIT_S)
    dash_duo.wait_for_contains_text("#unit-scatter .gtitle", "IT-006", timeout=WAIT_S)
    assert "site=IT-006" in href
    assert console_errors(dash_duo) == []


@pytest.mark.parametrize(
    "query",
    ["layer_idx=99&channel=0", "layer_idx=0&channel=%27%3B--", "layer_idx=..%2Fetc&channel=0", "model=%3Cscript%3E"],
)
def test_bad_parameters_show_the_friendly_message(dash_duo, results_app, query):
    dash_duo.start_server(results_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/unit?dataset=mini&{query}")
    dash_duo.wait_for_element("#friendly-error", timeout=WAIT_S)
    assert console_errors(dash_duo) == []
