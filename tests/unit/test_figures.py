"""Pure figure functions: they draw what the frame holds and refuse frames without their columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.figures import controls, decoding, featuremaps, layers, overview, runnerups

CATS = ["Animals", "Cars", "Faces"]


def scores_frame():
    rows = []
    for model, kind, top1, base in (("a", "pretrained", 75.0, 0.5), ("b", "pretrained", 80.0, 0.6),
                                    ("pixels", "control", None, 0.2)):
        for region, shift in (("V4", 0.0), ("IT", 0.1)):
            rows.append({"model": model, "region": region, "metric": "neural_correlation", "value": base + shift,
                         "ci_low": base + shift - 0.05, "ci_high": base + shift + 0.05, "kind": kind,
                         "imagenet_top1": top1, "imagenet_top5": None, "parameters": 1e6, "total_units": 1e7})
            rows.append({**rows[-1], "metric": "null_median", "value": 0.1, "ci_low": None, "ci_high": None})
            rows.append({**rows[-2], "metric": "best_layer_score", "value": base + shift - 0.02})
    return pd.DataFrame(rows)


def test_leaderboard_orders_by_last_region_and_carries_intervals_and_null():
    table = overview.leaderboard(scores_frame(), "neural_correlation", ["V4", "IT"])
    assert table["model"].tolist() == ["b", "a", "pixels"]
    assert table.loc[0, "IT"] == pytest.approx(0.7)
    assert table.loc[0, "IT_ci"] == "[0.650, 0.750]"
    assert table.loc[0, "V4_null"] == pytest.approx(0.1)


def test_region_scatter_separates_models_and_controls():
    fig = overview.make_region_scatter_figure(scores_frame(), "neural_correlation")
    names = [t.name for t in fig.data]
    assert names == ["models", "controls"]
    assert list(fig.data[0].x) == pytest.approx([0.5, 0.6]) and list(fig.data[0].y) == pytest.approx([0.6, 0.7])


def test_score_vs_accuracy_skips_models_without_accuracy():
    fig = overview.make_score_vs_figure(scores_frame(), "neural_correlation", "imagenet_top1")
    assert all(len(t.x) == 2 for t in fig.data)


def test_layer_vs_all_hatches_controls():
    fig = overview.make_layer_vs_all_figure(scores_frame(), "IT")
    assert list(fig.data[0].marker.pattern.shape) == ["", "", "/"]


def test_figures_refuse_frames_without_their_columns():
    with pytest.raises(ValueError, match="missing column"):
        overview.leaderboard(pd.DataFrame({"model": []}), "x", ["V4"])
    with pytest.raises(ValueError, match="missing column"):
        runnerups.make_runnerup_heatmap_figure(pd.DataFrame({"r": [1]}), region="V4", model="m")


def test_runnerup_heatmap_sorts_sites_by_top1():
    df = pd.DataFrame({"site_id": ["s0"] * 3 + ["s1"] * 3, "site_idx": [0] * 3 + [1] * 3, "rank": [1, 2, 3] * 2,
                       "r": [0.5, 0.4, 0.3, 0.9, 0.8, 0.7]})
    fig = runnerups.make_runnerup_heatmap_figure(df, region="IT", model="m")
    np.testing.assert_allclose(fig.data[0].z, [[0.9, 0.8, 0.7], [0.5, 0.4, 0.3]])


def test_validated_featuremaps_counts_sites_over_thresholds():
    best = pd.DataFrame({"site_id": ["a", "b", "a", "b"], "channel": [0, 0, 1, 1], "r": [0.35, 0.55, 0.1, 0.2]})
    table = featuremaps.validated_featuremaps(best, channels=3)
    assert table.loc[0, "best_site"] == "b" and table.loc[0, "sites_r>0.3"] == 2 and table.loc[0, "sites_r>0.5"] == 1
    assert table.loc[1, "sites_r>0.3"] == 0 and pd.isna(table.loc[2, "best_r"])


def test_layer_histogram_counts_best_units_per_layer():
    best = pd.DataFrame({"region": ["V4", "V4", "IT"], "layer_idx": [0, 2, 2]})
    lay = pd.DataFrame({"layer_idx": [0, 1, 2], "layer": ["a", "b", "c"]})
    fig = layers.make_layer_histogram_figure(best, lay, region="V4", model="m")
    assert list(fig.data[0].y) == [1, 0, 1]


def test_decoding_figure_means_and_chance_line():
    runs = pd.DataFrame({"region": "IT", "train_population": ["matched", "matched", "neural"],
                         "test_population": ["matched", "matched", "matched"], "variant": "in_sample",
                         "accuracy": [0.5, 0.7, 0.4], "chance": 0.125})
    fig = decoding.make_decoding_figure(runs, region="IT", variant="in_sample")
    assert list(fig.data[0].y) == pytest.approx([0.6, 0.4])
    assert fig.layout.shapes[0].y0 == pytest.approx(0.125)


def test_confusion_matrix_is_square_over_all_categories():
    conf = pd.DataFrame({"train_population": "neural", "test_population": "neural", "variant": "in_sample",
                         "true_category": ["Animals", "Cars"], "predicted_category": ["Animals", "Faces"],
                         "fraction": [1.0, 1.0]})
    fig = decoding.make_confusion_figure(conf, train="neural", test="neural", variant="in_sample")
    assert np.asarray(fig.data[0].z).shape == (3, 3)


def test_rotation_figure_reports_mean_and_sd():
    rot = pd.DataFrame({"model": "m", "region": "V4", "basis": ["natural", "rotated", "rotated", "neural_self"],
                        "run": [0, 0, 1, 0], "value": [0.6, 0.3, 0.5, 0.2]})
    fig = controls.make_rotation_figure(rot, region="V4")
    rotated = next(t for t in fig.data if t.name == "random rotations")
    assert rotated.y[0] == pytest.approx(0.4) and rotated.error_y.array[0] == pytest.approx(np.std([0.3, 0.5], ddof=1))
