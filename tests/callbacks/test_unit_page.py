"""Unit page: layout, callbacks, URL validation (no SQL from bad parameters) and its exports, against
brute-force references computed from the toy model's activations."""

from __future__ import annotations

import importlib
import io

import dash
import numpy as np
import pandas as pd
import pytest

from tests.support.factories import TOY_LAYERS, brute_force_r, mini_tables, toy_activations
from tests.support.tree import find, of_type, text

TOP_K, LAYER_K = 10, 5  # what write_toy_results stores


def unit_page():
    importlib.import_module("app")
    return importlib.import_module("pages.unit")


def reference():
    """float64 r (sites x units), site ids, and each layer's offset in the flat unit index."""
    tables = mini_tables()
    r = brute_force_r(tables.responses, toy_activations(24))
    sizes = [c * h * w for _, c, h, w in TOY_LAYERS]
    return r, tables.sites.sort_values("idx")["site_id"].tolist(), np.concatenate([[0], np.cumsum(sizes)])


def flat(li, c, y, x, offsets):
    _, _, h, w = TOY_LAYERS[li]
    return int(offsets[li] + c * h * w + y * w + x)


def unit_of(unit_flat: int, offsets) -> dict:
    li = int(np.searchsorted(offsets, unit_flat, side="right") - 1)
    _, _, h, w = TOY_LAYERS[li]
    rem = unit_flat - offsets[li]
    return {"layer_idx": li, "channel": int(rem // (h * w)), "y": int((rem // w) % h), "x": int(rem % w)}


def rank_of(row: np.ndarray, idx: np.ndarray, unit: int) -> int | None:
    """1-based rank of `unit` among `idx` by r (highest first; ties: lower flat index), like the writer."""
    vals = np.where(np.isnan(row[idx]), -np.inf, row[idx])
    order = idx[np.lexsort((idx, -vals))]
    return int(np.flatnonzero(order == unit)[0]) + 1


def store_of(layout) -> dict:
    return next(c for c in layout.children if getattr(c, "id", None) == "unit-unit").data


def test_without_a_unit_the_region_best_matched_unit_is_shown(results_env):
    r, sites, offsets = reference()
    it = [i for i, s in enumerate(sites) if s.startswith("IT")]
    best_site, best_unit = np.unravel_index(np.nanargmax(r[it]), r[it].shape)
    layout = unit_page().layout(dataset="mini", model="toy", region="IT")
    unit = store_of(layout)
    assert flat(unit["layer_idx"], unit["channel"], unit["y"], unit["x"], offsets) == best_unit
    identity = text(find(layout, "unit-identity"))
    assert identity.startswith("model toy layer") and f"(#{unit['layer_idx']})" in identity


@pytest.mark.parametrize("site_index", [0, 3, 6])
def test_sites_table_gives_every_rank_of_the_unit(results_env, site_index):
    """Take a site's rank-1 unit; every site that has it in a top-K list is listed with the right ranks."""
    r, sites, offsets = reference()
    unit_flat = int(np.nanargmax(r[site_index]))
    unit = unit_of(unit_flat, offsets)
    li = unit["layer_idx"]
    _, _, h, w = TOY_LAYERS[li]
    rows, *_ = unit_page().update_unit(unit, "mini", "toy", "V4")
    got = {row["site_id"]: row for row in rows}
    for s, site in enumerate(sites):
        model_rank = rank_of(r[s], np.arange(r.shape[1]), unit_flat)
        layer_rank = rank_of(r[s], np.arange(offsets[li], offsets[li + 1]), unit_flat)
        fmap = np.arange(offsets[li] + unit["channel"] * h * w, offsets[li] + (unit["channel"] + 1) * h * w)
        in_fmap = rank_of(r[s], fmap, unit_flat) == 1
        listed = model_rank <= TOP_K or layer_rank <= LAYER_K or in_fmap
        assert (site in got) == listed, site
        if listed:
            row = got[site]
            assert row["rank"] == (model_rank if model_rank <= TOP_K else None)
            assert row["layer_rank"] == (layer_rank if layer_rank <= LAYER_K else None)
            assert row["featuremap_best"] == in_fmap
            assert row["r"] == pytest.approx(r[s, unit_flat], abs=1e-5)
            assert f"[{site}](/sites?dataset=mini&model=toy&region={site[:2]}&site={site}" in row["site"]
    assert got[sites[site_index]]["rank"] == 1
    ranks = [row["rank"] for row in rows if row["rank"] is not None]
    assert ranks == sorted(ranks)


def test_scatter_is_the_site_against_the_unit(results_env):
    r, sites, offsets = reference()
    page = unit_page()
    unit_flat = int(np.nanargmax(r[6]))  # an IT site's best unit (gathered), drawn against another IT site
    unit = unit_of(unit_flat, offsets)
    site, region = "IT-008", "IT"
    fig, query = page.update_scatter(site, unit, "mini", "toy", region)
    x = np.concatenate([t.x for t in fig.data if t.mode == "markers"])
    y = np.concatenate([t.y for t in fig.data if t.mode == "markers"])
    assert len(x) == 24
    s = sites.index(site)
    assert np.corrcoef(x, y)[0, 1] == pytest.approx(r[s, unit_flat], abs=1e-5)
    assert f"r = {r[s, unit_flat]:.3f}" in fig.layout.title.text
    assert query == (
        f"?dataset=mini&model=toy&region={region}&layer_idx={unit['layer_idx']}&channel={unit['channel']}"
        f"&y={unit['y']}&x={unit['x']}&site={site}"
    )
    # a unit whose activations were not gathered: the scatter and the categories say so
    gathered = set(
        map(
            tuple,
            page.data.database()
            .query("SELECT layer_idx, channel, y, x FROM unit_activations WHERE model = 'toy'")
            .to_numpy()
            .tolist(),
        )
    )
    missing = next(
        (0, c, y_, x_) for c in range(4) for y_ in range(3) for x_ in range(3) if (0, c, y_, x_) not in gathered
    )
    missing_unit = dict(zip(("layer_idx", "channel", "y", "x"), missing, strict=True))
    fig, _ = page.update_scatter(None, missing_unit, "mini", "toy", "V4")
    assert "not gathered" in fig.layout.annotations[0].text
    _, categories, top, rf = page.update_unit(missing_unit, "mini", "toy", "V4")
    assert "not gathered" in categories.layout.annotations[0].text and "not gathered" in text(top)
    assert not of_type(top, dash.html.Img)
    message = rf.layout.annotations[0].text.replace("<br>", " ")
    assert "python -m precompute rf --dataset mini --model toy --unit" in message


def test_categories_and_top_stimuli_follow_the_activations(results_env):
    page = unit_page()
    layout = page.layout(dataset="mini", model="toy", region="V4")
    unit = store_of(layout)
    _, categories, top, _ = page.update_unit(unit, "mini", "toy", "V4")
    acts = toy_activations(24)[unit["layer_idx"]][:, unit["channel"], unit["y"], unit["x"]]
    stimuli = mini_tables().stimuli.sort_values("idx")
    for trace in categories.data:
        if trace.type == "box":
            expected = acts[(stimuli["category"] == trace.name).to_numpy()]
            assert np.allclose(np.sort(trace.y), np.sort(expected), atol=1e-5)
    top_ids = stimuli["stimulus_id"].to_numpy()[np.argsort(-acts, kind="stable")[: page.N_TOP_STIMULI]]
    assert [f"/stimulus/mini/{s}.png" for s in top_ids] == [img.src for img in _images(top)]


def _images(node):
    children = getattr(node, "children", None)
    if getattr(node, "src", None):
        yield node
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        yield from _images(child)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"layer_idx": "99", "channel": "0"}, "out of range 0..2"),
        ({"layer_idx": "0", "channel": "4"}, "channel 4 is out of range 0..3"),
        ({"layer_idx": "0", "channel": "0", "y": "3"}, "y 3 is out of range 0..2"),
        ({"layer_idx": "2", "channel": "0", "x": "-1"}, "x -1 is out of range 0..0"),
        ({"layer_idx": "1 OR 1=1", "channel": "0"}, "whole number"),
        ({"layer_idx": "0", "channel": "0; DROP TABLE matches"}, "whole number"),
        ({"layer_idx": "../../etc/passwd", "channel": "0"}, "whole number"),
        ({"layer_idx": "0"}, "channel is missing"),
        ({"model": "nope", "layer_idx": "0", "channel": "0"}, "not matched on mini"),
        ({"layer_idx": "0", "channel": "0", "site": "<script>"}, "unknown site"),
        ({"layer_idx": "0", "channel": "0", "region": "IT", "site": "V4-000"}, "unknown site"),
    ],
)
def test_bad_parameters_are_friendly_and_never_reach_sql(results_env, monkeypatch, params, message):
    page = unit_page()
    from backend.db import Database

    seen: list[str] = []
    real = Database.query

    def spy(self, sql, params_=None):
        seen.append(sql + " " + repr(params_))
        return real(self, sql, params_)

    monkeypatch.setattr(Database, "query", spy)
    layout = page.layout(**{"dataset": "mini", "model": "toy", **params})
    assert layout.id == "friendly-error", text(layout)[:300]
    assert message in text(layout)
    bad = [v for k, v in params.items() if k != "model" and not v.lstrip("-").isdigit()]
    for value in bad:
        assert not any(value in q for q in seen), f"{value!r} reached SQL"
    assert not any("unit_activations" in q or "receptive_fields" in q for q in seen)


def test_navigation_keeps_the_unit_on_a_region_change_only():
    from pages.unit import navigation_query

    unit = {"layer_idx": 3, "channel": 1, "y": 0, "x": 2}
    expected = "?dataset=d&model=m&region=IT&layer_idx=3&channel=1&y=0&x=2"
    assert navigation_query("region", "d", "m", "IT", unit) == expected
    assert navigation_query("model", "d", "m2", "IT", unit) == "?dataset=d&model=m2&region=IT"
    assert navigation_query("dataset", "d2", "m", "V4", unit) == "?dataset=d2&region=V4"


def test_other_pages_link_to_the_unit(results_env):
    importlib.import_module("app")
    sites = importlib.import_module("pages.sites")
    rows, *_ = sites.update_site("IT-005", "mini", "toy", "IT")
    row = rows[0]
    assert row["unit"] == (
        f"[open](/unit?dataset=mini&model=toy&region=IT&layer_idx={row['layer_idx']}"
        f"&channel={row['channel']}&y={row['y']}&x={row['x']}&site=IT-005)"
    )
    _, strips = sites.update_scatter("IT-005", 1, "mini", "toy", "IT")
    assert [link.href for link in of_type(strips, dash.dcc.Link)] == [
        f"/unit?dataset=mini&model=toy&region=IT&layer_idx={row['layer_idx']}&channel={row['channel']}"
        f"&y={row['y']}&x={row['x']}&site=IT-005"
    ]
    fm = importlib.import_module("pages.featuremaps")
    _, _, _, rows, cols = fm.update_featuremaps("1", "mini", "toy", "V4", 0)
    assert any(c["field"] == "unit" for c in cols)
    linked = [row for row in rows if row.get("unit")]
    assert linked and all(
        f"layer_idx=0&channel={row['channel']}&y={row['best_y']}&x={row['best_x']}"
        f"&site={row['best_site']}" in row["unit"]
        for row in linked
    )
    ru = importlib.import_module("pages.runnerups")
    out = ru.open_clicked({"points": [{"curveNumber": 0, "customdata": "IT-005", "x": 2}]}, "mini", "toy", "IT")
    top = importlib.import_module("backend.data").site_matches("mini", "toy", "IT-005")
    second = top[top["rank"] == 2].iloc[0]
    assert [link.href for link in of_type(out, dash.dcc.Link)] == [
        f"/unit?dataset=mini&model=toy&region=IT&layer_idx={second.layer_idx}&channel={second.channel}"
        f"&y={second.y}&x={second.x}&site=IT-005",
        "/sites?dataset=mini&model=toy&region=IT&site=IT-005&rank=2",
    ]


@pytest.fixture
def client(results_env):
    return importlib.import_module("app").server.test_client()


@pytest.mark.parametrize("name", ["unit-scatter", "unit-categories", "unit-rf", "unit-sites", "unit-top-stimuli"])
def test_unit_exports(client, name):
    unit = {"dataset": "mini", "model": "toy", "region": "IT"}
    resp = client.get(f"/export/{name}.csv", query_string=unit)
    assert resp.status_code == 200, resp.data[:300]
    assert resp.headers["Content-Disposition"].startswith(f'attachment; filename="unitscope_{name}_dataset-mini')
    if name != "unit-rf":  # no receptive field in the toy build: an empty table
        frame = pd.read_csv(io.StringIO(resp.data.decode()))
        assert len(frame) > 0
    png = client.get(f"/export/{name}.png", query_string=unit)
    if name in ("unit-sites", "unit-top-stimuli"):
        assert png.status_code == 404 and b"table" in png.data  # tables export data only
    bad = client.get(f"/export/{name}.csv", query_string={**unit, "layer_idx": "0 OR 1=1", "channel": "0"})
    assert bad.status_code == 400 and b"whole number" in bad.data


def test_unit_scatter_export_matches_the_page(client):
    page = unit_page()
    unit = store_of(page.layout(dataset="mini", model="toy", region="IT"))
    resp = client.get(
        "/export/unit-scatter.csv",
        query_string={"dataset": "mini", "model": "toy", "region": "IT", **{k: str(v) for k, v in unit.items()}},
    )
    frame = pd.read_csv(io.StringIO(resp.data.decode()))
    assert {"stimulus_id", "category", "neural", "unit"} <= set(frame.columns) and len(frame) == 24
    fig, _ = page.update_scatter(None, unit, "mini", "toy", "IT")
    x = np.concatenate([t.x for t in fig.data if t.mode == "markers"])
    assert np.allclose(np.sort(x), np.sort(frame["neural"].to_numpy()), atol=1e-6)
