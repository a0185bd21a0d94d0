"""Server-side exports: every registered figure as data, a sample as PNG/SVG/PDF, and hostile requests."""

from __future__ import annotations

import importlib
import io

import pandas as pd
import pytest

QUERY = {
    "dataset": "mini",
    "model": "toy",
    "region": "IT",
    "site": "IT-005",
    "rank": "2",
    "layer": "1",
    "a": "toy",
    "b": "toy2",
    "metric": "neural_correlation",
}
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<svg", "pdf": b"%PDF"}


@pytest.fixture
def client(results_env):
    return importlib.import_module("app").server.test_client()


def exports():
    importlib.import_module("app")
    from components.exports import registered

    return registered()


@pytest.mark.parametrize("name", sorted(exports()))
def test_every_figure_exports_its_data(client, name):
    spec = exports()[name]
    params = {k: v for k, v in QUERY.items() if k in spec.params}
    csv = client.get(f"/export/{name}.csv", query_string=params)
    assert csv.status_code == 200, csv.data[:300]
    assert csv.headers["Content-Disposition"].startswith(f'attachment; filename="unitscope_{name}')
    parquet = client.get(f"/export/{name}.parquet", query_string=params)
    assert parquet.status_code == 200
    frame = pd.read_parquet(io.BytesIO(parquet.data))
    assert list(pd.read_csv(io.StringIO(csv.data.decode())).columns) == list(frame.columns)


def test_site_scatter_csv_has_the_plotted_columns(client):
    resp = client.get(
        "/export/sites-scatter.csv", query_string={k: QUERY[k] for k in ("dataset", "model", "region", "site", "rank")}
    )
    frame = pd.read_csv(io.StringIO(resp.data.decode()))
    assert {"stimulus_id", "category", "neural", "unit"} <= set(frame.columns) and len(frame) == 24
    assert (
        'filename="unitscope_sites-scatter_dataset-mini_model-toy_region-IT_site-IT-005_rank-2.csv"'
        in resp.headers["Content-Disposition"]
    )


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
@pytest.mark.parametrize("name", ["sites-scatter", "layers-spread"])
def test_images_are_valid_files(client, name, fmt):
    spec = exports()[name]
    resp = client.get(f"/export/{name}.{fmt}", query_string={k: v for k, v in QUERY.items() if k in spec.params})
    assert resp.status_code == 200
    assert resp.data.lstrip()[:8].startswith(MAGIC[fmt]) or (fmt == "svg" and b"<svg" in resp.data[:200])


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/export/nope.png", 404),
        ("/export/sites-scatter.exe", 404),
        ("/export/..%2F..%2Fetc%2Fpasswd.png", None),  # not an export route: Dash's page shell, no file
        ("/export/sites-scatter.csv?dataset=mini&site=../../etc/passwd", 400),
        ("/export/sites-scatter.csv?dataset=mini&model=x%27%3B%20DROP%20TABLE%20matches%3B--", 400),
        ("/export/featuremaps-counts.csv?dataset=mini&layer=1e9", 400),
        ("/export/sites-scatter.csv?dataset=" + "a" * 500, 400),
    ],
)
def test_hostile_requests_get_clear_refusals(client, path, status):
    resp = client.get(path)
    if status is None:
        assert resp.mimetype == "text/html" and b"root:" not in resp.data
    else:
        assert resp.status_code == status
    assert b"Traceback" not in resp.data
