"""Preprocessing (DESIGN.md Input contract) and the random control, against direct references."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from precompute.models.base import LayerInfo
from precompute.models.controls import RandomSource, pixels_size
from precompute.models.preprocess import to_model_input
from precompute.models.sources import to_nchw


def test_preprocess_resizes_only_when_needed_then_normalises():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(10, 10), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    out = to_model_input([gray, rgb], 10, 3, [0.5, 0.4, 0.3], [0.2, 0.25, 0.5])
    assert out.shape == (2, 3, 10, 10) and out.dtype == np.float32
    mean = np.array([0.5, 0.4, 0.3]).reshape(3, 1, 1)
    std = np.array([0.2, 0.25, 0.5]).reshape(3, 1, 1)
    np.testing.assert_allclose(out[0], (gray[None].astype(np.float64) / 255 - mean) / std, atol=1e-5)
    resized = np.asarray(Image.fromarray(rgb).resize((10, 10), Image.BILINEAR)).astype(np.float64)
    np.testing.assert_allclose(out[1], (resized.transpose(2, 0, 1) / 255 - mean) / std, atol=1e-5)
    nhwc = to_model_input([gray, rgb], 10, 3, [0.5, 0.4, 0.3], [0.2, 0.25, 0.5], layout="nhwc")
    np.testing.assert_array_equal(nhwc, out.transpose(0, 2, 3, 1))
    luminance = to_model_input([rgb], 6, 1, [0.0], [1.0])
    np.testing.assert_allclose(luminance[0, 0], np.asarray(Image.fromarray(rgb).convert("L")) / 255.0, atol=1e-7)


def test_to_nchw_follows_the_units_contract():
    a = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # NHWC: H=3, W=4, C=5
    out = to_nchw(a, "nhwc")
    assert out.shape == (2, 5, 3, 4) and out[1, 2, 1, 3] == a[1, 1, 3, 2]
    tokens = np.arange(2 * 7 * 6, dtype=np.float32).reshape(2, 7, 6)  # (batch, tokens, dims)
    out = to_nchw(tokens)
    assert out.shape == (2, 6, 7, 1) and out[1, 4, 5, 0] == tokens[1, 5, 4]  # channel = dim, y = token
    assert to_nchw(np.ones((2, 9))).shape == (2, 9, 1, 1)


def test_random_source_is_normal_deterministic_and_independent():
    layers = [LayerInfo(0, "a", 8, 4, 4), LayerInfo(1, "b", 1000, 1, 1)]
    src = RandomSource("random-x", layers, seed=1, threads=2)
    ids = [f"s{i}" for i in range(400)]
    a, b = src.activations(None, ids)
    again = RandomSource("random-x", layers, seed=1, threads=1).activations(None, ids[::-1], [1])[0]
    np.testing.assert_array_equal(again[::-1], b)
    other_seed = RandomSource("random-x", layers, seed=2).activations(None, ids[:1], [1])[0]
    assert not np.array_equal(other_seed[0], b[0])
    assert a.shape == (400, 8, 4, 4) and b.shape == (400, 1000, 1, 1)
    v = b.reshape(400, -1).astype(np.float64)
    assert abs(v.mean()) < 0.01 and abs(v.std() - 1) < 0.01
    r = np.corrcoef(v.T)  # units x units over stimuli: independent units have |r| ~ 1/sqrt(400)
    off = r[~np.eye(1000, dtype=bool)]
    assert np.abs(off).max() < 0.3 and abs(off.mean()) < 0.005
    s = np.corrcoef(v)  # stimuli x stimuli over units
    assert np.abs(s[~np.eye(400, dtype=bool)]).max() < 0.2


def test_random_source_writes_into_given_arrays():
    layers = [LayerInfo(0, "a", 2, 3, 3), LayerInfo(1, "b", 5, 1, 1)]
    src = RandomSource("random-x", layers, seed=4, threads=2)
    ids = [f"s{i}" for i in range(6)]
    a, b = src.activations(None, ids)
    stage = np.full((8, 18), np.nan, np.float32)
    out = src.activations_into(None, ids, [0, 1], [stage[1:7], None])
    assert np.shares_memory(out[0], stage) and out[0].shape == (6, 2, 3, 3)
    np.testing.assert_array_equal(stage[1:7], a.reshape(6, -1))
    np.testing.assert_array_equal(out[1], b)
    assert np.isnan(stage[0]).all() and np.isnan(stage[7]).all()


def test_pixels_names():
    assert pixels_size("pixels") == 224 and pixels_size("pixels-96") == 96 and pixels_size("random-x") is None


def test_default_normalisation_is_imagenets_and_the_warning_gives_the_values_stored(caplog):
    from precompute.models import zoo
    from precompute.models.add import _norm

    with caplog.at_level("WARNING", logger="precompute.models.add"):
        mean, std = _norm(None, None, 1)
    assert mean == pytest.approx([sum(zoo.IMAGENET_MEAN) / 3]) and std == pytest.approx([sum(zoo.IMAGENET_STD) / 3])
    assert f"{mean[0]:.3f} / {std[0]:.3f}" in caplog.text  # what is stored, not ImageNet's three values
    caplog.clear()
    with caplog.at_level("WARNING", logger="precompute.models.add"):
        assert _norm(None, None, 3) == (list(zoo.IMAGENET_MEAN), list(zoo.IMAGENET_STD))
    assert "0.485 0.456 0.406 / 0.229 0.224 0.225" in caplog.text
    assert _norm([0.5], [0.25], 3) == ([0.5] * 3, [0.25] * 3)
