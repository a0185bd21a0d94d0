"""Model-unit receptive fields: a unit whose true field is known is found by both methods."""

from __future__ import annotations

import math

import numpy as np
import pytest

from precompute.analyses import receptive_fields as arf
from precompute.analyses import rf_gradient
from precompute.models.base import LayerInfo
from precompute.models.preprocess import to_model_input

SIZE = 32  # image pixels
DEG = 8.0  # the image spans 8 degrees
TRUE_X, TRUE_Y, SIGMA = 1.5, -2.5, 0.5  # degrees (+y up)


def _gauss_window(cx_deg: float, cy_deg: float, sigma_deg: float) -> np.ndarray:
    px = (np.arange(SIZE) + 0.5) / SIZE * DEG - DEG / 2
    xx, yy = np.meshgrid(px, -px)  # row 0 is the top (y = +4)
    return np.exp(-((xx - cx_deg) ** 2 + (yy - cy_deg) ** 2) / (2 * sigma_deg**2))


class GaussPool:
    """A tiny torch 'network': layer 0 has 1 x 2 x 2 units; unit (0, 1, 0) pools a Gaussian window of the
    input (the known receptive field), the others pool windows elsewhere."""

    def __init__(self):
        import torch

        windows = [
            _gauss_window(-2.0, 2.0, 0.7),
            _gauss_window(2.0, 2.0, 0.7),
            _gauss_window(TRUE_X, TRUE_Y, SIGMA),
            _gauss_window(-2.0, -2.0, 0.7),
        ]
        self.w = torch.tensor(np.stack(windows), dtype=torch.float32)  # (4, S, S)

    def __call__(self, x):
        out = (x[:, 0][:, None] * self.w[None]).sum(dim=(2, 3))  # (batch, 4)
        return out.reshape(-1, 1, 2, 2)


class GaussSource:
    """The GaussPool as an ActivationSource (8-bit images in, the Input contract's preprocessing)."""

    model = "gauss"

    def __init__(self):
        self.layers = [LayerInfo(0, "pool", 1, 2, 2)]
        self.net = GaussPool()

    def activations(self, images, stimulus_ids, layer_indices=None):
        import torch

        x = torch.from_numpy(to_model_input(images, SIZE, 1, [0.5], [0.5]))
        with torch.no_grad():
            return [self.net(x).numpy()]

    def close(self):
        pass


def test_mapping_finds_a_known_receptive_field():
    est = arf.mapping_rfs(GaussSource(), [(0, 0, 1, 0)], SIZE, DEG)[0]
    assert math.hypot(est.x_deg - TRUE_X, est.y_deg - TRUE_Y) < 0.35
    # the 1-degree squares and the 1-degree smoothing make the mapped size an upper bound
    assert 1.8 < est.size_deg < 3.0
    other = arf.mapping_rfs(GaussSource(), [(0, 0, 0, 1)], SIZE, DEG)[0]
    assert math.hypot(other.x_deg - 2.0, other.y_deg - 2.0) < 0.35


def test_gradient_finds_a_known_receptive_field_and_is_smaller_than_mapping():
    rng = np.random.default_rng(0)
    images = [(rng.random((SIZE, SIZE)) * 255).astype(np.uint8) for _ in range(8)]
    batches = [to_model_input(images[:5], SIZE, 1, [0.5], [0.5]), to_model_input(images[5:], SIZE, 1, [0.5], [0.5])]
    net = GaussPool()
    maps = rf_gradient.gradient_maps(net, batches, [(0, 1, 0)])
    # |d unit / d input| of a linear pooling unit is its window (times 1/std of the normalisation's input)
    np.testing.assert_allclose(maps[0], _gauss_window(TRUE_X, TRUE_Y, SIGMA), rtol=1e-5, atol=1e-6)
    est = rf_gradient.gradient_rf(maps[0], DEG)
    assert math.hypot(est.x_deg - TRUE_X, est.y_deg - TRUE_Y) < 0.15
    expected = 2 * math.sqrt(SIGMA**2 + rf_gradient.GRADIENT_SMOOTH_DEG**2)  # 1-SD contour diameter after smoothing
    assert est.size_deg == pytest.approx(expected, rel=0.15)
    mapped = arf.mapping_rfs(GaussSource(), [(0, 0, 1, 0)], SIZE, DEG)[0]
    assert est.size_deg < mapped.size_deg


def test_resample_to_grid_keeps_position_for_large_and_small_images():
    for size in (32, 224):
        m = np.zeros((size, size))
        r, c = int(size * 0.25), int(size * 0.75)  # y = +2 deg, x = +2 deg (upper right)
        m[r, c] = 1.0
        g = rf_gradient.resample_to_grid(m, DEG)
        rr, cc = np.unravel_index(np.argmax(g), g.shape)
        centres = (np.arange(64) + 0.5) / 64 * 8 - 4
        assert abs(centres[cc] - 2.0) < 0.3 and abs(-centres[rr] - 2.0) < 0.3


def test_pixel_rf_is_the_pixel():
    est = rf_gradient.pixel_rf(0, 223, 224, 8.0)
    assert est.x_deg == pytest.approx(4 - 8 / 448) and est.y_deg == pytest.approx(4 - 8 / 448)
    assert est.size_deg < 0.05


def test_layer_forward_stops_at_the_layer_and_names_like_the_exporter():
    import torch

    from precompute.models.export import make_layer_tap

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 3), torch.nn.ReLU())
    x = torch.randn(2, 1, 9, 9)
    tap = make_layer_tap(net)
    with torch.no_grad():
        outs = tap(x)
    names = list(tap.names)
    tap.remove_hooks()
    assert names == ["1", "3"]
    calls = []
    net[2].register_forward_hook(lambda *a: calls.append(1))
    fwd = rf_gradient.layer_forward_fn(net, "1")
    with torch.no_grad():
        got = fwd(x)
    torch.testing.assert_close(got, outs[0])
    assert calls == []  # the second conv never ran
    for h in fwd.handles:
        h.remove()


class BlockSource:
    """Image-dependent source with the toy model's layer shapes: unit (c, y, x) is (c + 1) x the mean of
    image block (y, x) of an H x W tiling of the image."""

    def __init__(self, layers):
        self.model = "toy"
        self.layers = layers

    def activations(self, images, stimulus_ids, layer_indices=None):
        x = np.stack([np.asarray(i, np.float32) / 255 for i in images])
        out = []
        for li in layer_indices:
            la = self.layers[li]
            ry = np.eye(la.height)[(np.arange(SIZE) * la.height) // SIZE].T  # (H, S): pixel row -> block row
            rx = np.eye(la.width)[(np.arange(SIZE) * la.width) // SIZE].T
            blocks = (ry / ry.sum(1, keepdims=True)) @ x @ (rx / rx.sum(1, keepdims=True)).T
            out.append(blocks[:, None] * np.arange(1, la.channels + 1)[None, :, None, None])
        return out

    def close(self):
        pass


def test_receptive_fields_analysis_stores_mapping_rows_with_distances(results_env, monkeypatch):
    from precompute.analyses import common
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis
    from precompute.models import registry

    def open_block(ctx):
        return BlockSource(registry.read_layers(ctx.con, ctx.model)), None

    monkeypatch.setattr(common, "open_model", open_block)
    (analysis,) = get_analyses(["receptive_fields"])
    assert run_analysis(results_env, analysis, "mini", "toy")
    with results_env.connect() as con:
        rows = con.execute("SELECT * FROM receptive_fields WHERE model = 'toy'").df()
        best = con.execute(
            "SELECT DISTINCT layer_idx, channel, y, x FROM matches WHERE model = 'toy' AND rank = 1"
        ).df()
        site = con.execute(
            "SELECT rf_x_deg, rf_y_deg FROM sites WHERE site_id = ?", [rows["site_id"].iloc[0]]
        ).fetchone()
    assert set(rows["method"]) == {"mapping"}  # the toy model is not a torch network: no gradient rows
    assert len(rows) == len(best)
    first = rows.iloc[0]
    assert first["distance_deg"] == pytest.approx(math.hypot(first["x_deg"] - site[0], first["y_deg"] - site[1]))
    # a unit of the 1 x 1 layer pools the whole image: its field is central
    fc = rows[rows["layer_idx"] == 2]
    assert (fc[["x_deg", "y_deg"]].abs() < 0.5).all().all()


def test_rf_command_stores_a_requested_unit_and_rejects_bad_units(results_env, monkeypatch, capsys):
    import argparse

    from precompute.analyses import common
    from precompute.cli import rf as cli
    from precompute.core.errors import UserError
    from precompute.models import registry

    monkeypatch.setattr(common, "open_model", lambda ctx: (BlockSource(registry.read_layers(ctx.con, ctx.model)), None))
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rf", "--dataset", "mini", "--model", "toy", "--unit", "0,1,2,0"])
    assert args.func(args, results_env) == 0
    assert "mapping" in capsys.readouterr().out
    with results_env.connect() as con:
        rows = con.execute(
            "SELECT method, site_id, x_deg, y_deg FROM receptive_fields WHERE model = 'toy' AND "
            "layer_idx = 0 AND channel = 1 AND y = 2 AND x = 0"
        ).fetchall()
    assert len(rows) == 1 and rows[0][0] == "mapping"
    assert rows[0][2] < -1.0 and rows[0][3] < -1.0  # block (2, 0) of a 3 x 3 tiling: lower left
    for bad in ("0,1,2", "0,9,0,0", "7,0,0,0"):
        args = parser.parse_args(["rf", "--dataset", "mini", "--model", "toy", "--unit", bad])
        with pytest.raises(UserError):
            args.func(args, results_env)


def test_random_control_stores_no_receptive_field_and_says_so(results_env, monkeypatch):
    import json

    from precompute.analyses import common
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis

    opened = []
    monkeypatch.setattr(common, "is_random_control", lambda ctx: True)
    monkeypatch.setattr(common, "open_model", lambda *a: opened.append(1))
    (analysis,) = get_analyses(["receptive_fields"])
    assert run_analysis(results_env, analysis, "mini", "toy")
    with results_env.connect() as con:
        assert con.execute("SELECT count(*) FROM receptive_fields WHERE model = 'toy'").fetchone()[0] == 0
        notes = json.loads(con.execute("SELECT value FROM build_info WHERE key = ?", [common.NOTES_KEY]).fetchone()[0])
    assert opened == []  # nothing was run
    assert "no receptive field" in notes["receptive_fields:mini:toy"]
