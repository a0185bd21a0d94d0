"""Every results page in a browser: loads cleanly, a filter change updates the figures and the URL,
reopening the URL restores the view, and a bad parameter shows the friendly message."""

from __future__ import annotations

import pytest
from dash.testing.wait import until

from tests.integration import WAIT_S
from tests.integration.conftest import console_errors

pytestmark = pytest.mark.browser

PAGES = [
    ("/sites", "#sites-scatter"),
    ("/layers", "#layers-hist"),
    ("/runner-ups", "#runnerups-heatmap"),
    ("/feature-maps", "#featuremaps-counts"),
]


@pytest.fixture
def results_app(results_env):
    import importlib

    return importlib.import_module("app").app


def graph_title(dash_duo, graph: str) -> str:
    return dash_duo.find_element(f"{graph} .gtitle").text


@pytest.mark.parametrize(("path", "graph"), PAGES)
def test_page_filters_live_in_the_url(dash_duo, results_app, path, graph):
    dash_duo.start_server(results_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}{path}?dataset=mini&model=toy&region=V4")
    dash_duo.wait_for_element(f"{graph} .main-svg", timeout=WAIT_S)
    region_radio = next(
        el for el in dash_duo.find_elements(f"#{path.strip('/').replace('-', '')}-f-region label") if el.text == "IT"
    )
    region_radio.click()
    until(lambda: "region=IT" in dash_duo.driver.current_url, timeout=WAIT_S)
    dash_duo.wait_for_element(f"{graph} .main-svg", timeout=WAIT_S)
    url = dash_duo.driver.current_url
    dash_duo.driver.get(f"{dash_duo.server_url}/")
    dash_duo.wait_for_element("#overview-build", timeout=WAIT_S)
    dash_duo.driver.get(url)
    dash_duo.wait_for_element(f"{graph} .main-svg", timeout=WAIT_S)
    checked = dash_duo.find_element(f"#{path.strip('/').replace('-', '')}-f-region input:checked")
    assert checked.get_attribute("value") == "IT"
    assert console_errors(dash_duo) == []


@pytest.mark.parametrize(("path", "graph"), PAGES)
def test_bare_page_url_gets_its_full_view_on_first_load(dash_duo, results_app, path, graph):
    dash_duo.start_server(results_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}{path}")
    dash_duo.wait_for_element(f"{graph} .main-svg", timeout=WAIT_S)
    until(lambda: all(k in dash_duo.driver.current_url for k in ("dataset=mini", "model=", "region=")), WAIT_S)
    assert console_errors(dash_duo) == []


def test_sites_page_rank_and_site_are_shareable(dash_duo, results_app):
    dash_duo.start_server(results_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/sites?dataset=mini&model=toy&region=IT&site=IT-006&rank=3")
    dash_duo.wait_for_contains_text("#sites-scatter .gtitle", "Rank 3", timeout=WAIT_S)
    until(lambda: "site=IT-006" in dash_duo.driver.current_url and "rank=3" in dash_duo.driver.current_url, WAIT_S)
    assert console_errors(dash_duo) == []


@pytest.mark.parametrize("query", ["model=%3Cscript%3E", "layer=99", "site=..%2F..%2Fetc%2Fpasswd", "rank=-1"])
def test_bad_parameters_show_the_friendly_message(dash_duo, results_app, query):
    dash_duo.start_server(results_app)
    path = "/feature-maps" if query.startswith("layer") else "/sites"
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}{path}?dataset=mini&{query}")
    dash_duo.wait_for_element("#friendly-error", timeout=WAIT_S)
    assert console_errors(dash_duo) == []


@pytest.mark.parametrize(
    ("path", "element"),
    [
        ("/?dataset=mini", "#overview-regions .main-svg"),
        ("/controls?dataset=mini", "#controls-controls .main-svg"),
        ("/decoding?dataset=mini", "#decoding-accuracy .main-svg"),
        ("/compare?dataset=mini", "#compare-pair .main-svg"),
    ],
)
def test_other_pages_load_with_an_empty_console(dash_duo, results_app, path, element):
    dash_duo.start_server(results_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}{path}")
    dash_duo.wait_for_element(element, timeout=WAIT_S)
    assert console_errors(dash_duo) == []


def test_export_menu_downloads_what_is_on_screen(dash_duo, results_app):
    import urllib.request

    dash_duo.start_server(results_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/sites?dataset=mini&model=toy&region=IT&site=IT-006&rank=2")
    dash_duo.wait_for_contains_text("#sites-scatter .gtitle", "Rank 2", timeout=WAIT_S)
    dash_duo.find_element("#export-sites-scatter button").click()
    link = dash_duo.wait_for_element("#export-sites-scatter a.export-link", timeout=WAIT_S)
    main = dash_duo.driver.current_window_handle
    link.click()
    href = link.get_attribute("href")
    assert "/export/sites-scatter.png?" in href and "site=IT-006" in href and "rank=2" in href
    for handle in dash_duo.driver.window_handles:
        if handle != main:
            dash_duo.driver.switch_to.window(handle)
            dash_duo.driver.close()
    dash_duo.driver.switch_to.window(main)
    with urllib.request.urlopen(href, timeout=60) as resp:
        assert resp.read(8) == b"\x89PNG\r\n\x1a\n"
    assert console_errors(dash_duo) == []
