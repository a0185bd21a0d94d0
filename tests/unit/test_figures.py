"""Pure figure functions: they draw what the frame holds and refuse frames without their columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.figures import controls, decoding, featuremaps, layers, overview, runnerups

CATS = ["Animals", "Cars", "Faces"]


def scores_frame():
    rows = []
    for model, kind, top1, base in (
        ("a", "pretrained", 75.0, 0.5),
        ("b", "pretrained", 80.0, 0.6),
        ("pixels", "control", None, 0.2),
    ):
        for region, shift in (("V4", 0.0), ("IT", 0.1)):
            rows.append(
                {
                    "model": model,
                    "region": region,
                    "metric": "neural_correlation",
                    "value": base + shift,
                    "ci_low": base + shift - 0.05,
                    "ci_high": base + shift + 0.05,
                    "kind": kind,
                    "imagenet_top1": top1,
                    "imagenet_top5": None,
                    "parameters": 1e6,
                    "total_units": 1e7,
                }
            )
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


def test_long_score_names_title_the_figure_not_the_axes():
    frame = scores_frame().assign(metric=lambda f: f["metric"].replace("neural_correlation", "heldout_n2n"))
    label = overview.METRICS["heldout_n2n"]
    short = overview.METRIC_SHORT["heldout_n2n"]
    scatter = overview.make_region_scatter_figure(frame, "heldout_n2n")
    assert scatter.layout.yaxis.title.text == f"IT: {short}" and scatter.layout.xaxis.title.text == f"V4: {short}"
    for x in ("imagenet_top1", "parameters"):
        fig = overview.make_score_vs_figure(frame, "heldout_n2n", x)
        assert fig.layout.yaxis.title.text == short
        assert label in fig.layout.title.text.replace("<br>", " ")
    assert label in scatter.layout.title.text.replace("<br>", " ")
    assert all(len(s) <= 30 for s in overview.METRIC_SHORT.values()) and set(overview.METRIC_SHORT) == set(
        overview.METRICS
    )


def test_position_figure_keeps_subplot_titles_below_the_figure_title():
    topk = pd.DataFrame({"rank": [1, 1, 2], "y": [0, 1, 1], "x": [2, 2, 0]})
    fig = featuremaps.make_position_figure(topk, height=3, width=3, region="V4")
    subtitles = [a for a in fig.layout.annotations if a.text in ("x position", "y position")]
    assert len(subtitles) == 2
    # base_layout's title fills 40 px + 20 px a line of the top margin; the subplot titles (bottom-anchored at the
    # plot area's top) need their own row below it
    lines = fig.layout.title.text.count("<br>") + 1
    assert fig.layout.margin.t >= 40 + 20 * lines + featuremaps.SUBPLOT_TITLE_PX
    assert all(a.yref == "paper" and a.y == 1 and a.yanchor == "bottom" and a.font.size <= 14 for a in subtitles)


def test_layer_vs_all_hatches_controls():
    fig = overview.make_layer_vs_all_figure(scores_frame(), "IT")
    assert list(fig.data[0].marker.pattern.shape) == ["", "", "/"]


def test_figures_refuse_frames_without_their_columns():
    with pytest.raises(ValueError, match="missing column"):
        overview.leaderboard(pd.DataFrame({"model": []}), "x", ["V4"])
    with pytest.raises(ValueError, match="missing column"):
        runnerups.make_runnerup_heatmap_figure(pd.DataFrame({"r": [1]}), region="V4", model="m")


def test_runnerup_heatmap_sorts_sites_by_top1():
    df = pd.DataFrame(
        {
            "site_id": ["s0"] * 3 + ["s1"] * 3,
            "site_idx": [0] * 3 + [1] * 3,
            "rank": [1, 2, 3] * 2,
            "r": [0.5, 0.4, 0.3, 0.9, 0.8, 0.7],
        }
    )
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
    runs = pd.DataFrame(
        {
            "region": "IT",
            "train_population": ["matched", "matched", "neural"],
            "test_population": ["matched", "matched", "matched"],
            "variant": "in_sample",
            "accuracy": [0.5, 0.7, 0.4],
            "chance": 0.125,
        }
    )
    fig = decoding.make_decoding_figure(runs, region="IT", variant="in_sample")
    assert list(fig.data[0].y) == pytest.approx([0.6, 0.4])
    assert fig.layout.shapes[0].y0 == pytest.approx(0.125)


def test_confusion_matrix_is_square_over_all_categories():
    conf = pd.DataFrame(
        {
            "train_population": "neural",
            "test_population": "neural",
            "variant": "in_sample",
            "true_category": ["Animals", "Cars"],
            "predicted_category": ["Animals", "Faces"],
            "fraction": [1.0, 1.0],
        }
    )
    fig = decoding.make_confusion_figure(conf, train="neural", test="neural", variant="in_sample")
    assert np.asarray(fig.data[0].z).shape == (3, 3)


def test_rotation_figure_reports_mean_and_sd():
    rot = pd.DataFrame(
        {
            "model": "m",
            "region": "V4",
            "basis": ["natural", "rotated", "rotated", "neural_self"],
            "run": [0, 0, 1, 0],
            "value": [0.6, 0.3, 0.5, 0.2],
        }
    )
    fig = controls.make_rotation_figure(rot, region="V4")
    rotated = next(t for t in fig.data if t.name == "random rotations")
    assert rotated.y[0] == pytest.approx(0.4) and rotated.error_y.array[0] == pytest.approx(np.std([0.3, 0.5], ddof=1))


def scatter_frame(seed: int, scale: float = 1.0, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "stimulus_id": [f"s{i}" for i in range(n)],
            "category": [CATS[i % 3] for i in range(n)],
            "object": [f"o{i % 5}" for i in range(n)],
            "neural": rng.normal(size=n),
            "unit": rng.normal(size=n) * scale,
        }
    )
    frame.attrs.update({"r": 0.5, "layer": "blocks.1", "channel": 2, "y": 0, "x": 1})
    return frame


def test_site_scatter_draws_every_stimulus_once_per_category_on_a_shared_scale():
    from components.figures.sites import make_site_scatter_figure, scatter_limit

    a, b = scatter_frame(0), scatter_frame(1, scale=3.0)
    lim = scatter_limit(a, b)
    assert lim == pytest.approx(1.05 * max(np.abs(np.r_[a.neural, a.unit, b.neural, b.unit])))
    fig = make_site_scatter_figure(a, site_id="V4-1", model="m", rank=2, lim=lim)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert [t.name for t in markers] == sorted(CATS)
    for t in markers:
        rows = a[a["category"] == t.name]
        assert np.allclose(t.x, rows["neural"]) and np.allclose(t.y, rows["unit"])
        assert [c[0] for c in t.customdata] == rows["stimulus_id"].tolist()
    assert tuple(fig.layout.xaxis.range) == tuple(fig.layout.yaxis.range) == (-lim, lim)
    assert fig.layout.yaxis.scaleanchor == "x" and "Rank 2" in fig.layout.title.text
    own = make_site_scatter_figure(a, site_id="V4-1", model="m", rank=1, title="custom")
    assert own.layout.xaxis.range[1] == pytest.approx(scatter_limit(a)) and own.layout.title.text == "custom"
    assert "not gathered" in make_site_scatter_figure(None, site_id="s", model="m", rank=1).layout.annotations[0].text


def test_model_pair_figure_uses_one_range_on_both_axes():
    from components.figures.compare import make_model_pair_figure

    a = pd.DataFrame({"site_id": ["s1", "s2", "s3"], "region": "IT", "r": [0.3, 0.6, 0.5]})
    b = pd.DataFrame({"site_id": ["s1", "s2", "s3"], "region": "IT", "r": [0.4, 0.2, 0.7]})
    fig = make_model_pair_figure(a, b, model_a="A", model_b="B", region="IT")
    assert tuple(fig.layout.xaxis.range) == tuple(fig.layout.yaxis.range) == (pytest.approx(0.18), 1)
    assert "A better for 1 of 3" in fig.layout.title.text.replace("<br>", " ")


def test_unit_category_figure_has_one_box_per_category_and_the_mean():
    from components.figures.unit import make_unit_category_figure

    activity = pd.DataFrame({"category": [CATS[i % 3] for i in range(30)], "activation": np.arange(30.0)})
    fig = make_unit_category_figure(activity, model="m", unit_label="l [c0, y0, x0]")
    assert [t.name for t in fig.data] == sorted(CATS)
    for t in fig.data:
        assert sorted(t.y) == sorted(activity[activity["category"] == t.name]["activation"])
    assert fig.layout.shapes[0].y0 == pytest.approx(14.5)
    assert "not gathered" in make_unit_category_figure(None, model="m", unit_label="u").layout.annotations[0].text
    with pytest.raises(ValueError, match="activation"):
        make_unit_category_figure(pd.DataFrame({"category": ["a"]}), model="m", unit_label="u")


def test_unit_rf_figure_without_a_map_draws_the_centres_only():
    from components.figures.sites import make_unit_rf_figure

    units = pd.DataFrame(
        {
            "method": ["gradient", "mapping"],
            "x_deg": [1.0, 1.5],
            "y_deg": [0.0, 0.5],
            "size_deg": [2.0, 2.5],
            "map": [None, None],
            "map_size": [None, None],
            "extent_deg": [8.0, 8.0],
            "distance_deg": [0.3, 0.4],
        }
    )
    fig = make_unit_rf_figure(units, None, site_id="s", model="m")
    assert [t.type for t in fig.data] == ["scatter", "scatter"]  # no heatmap, two circles
    with_map = units.assign(map=[None, list(np.linspace(0, 1, 16))], map_size=[None, 4])
    assert make_unit_rf_figure(with_map, None, site_id="s", model="m").data[0].type == "heatmap"


def test_long_titles_and_empty_messages_wrap():
    from components.theme import base_layout, empty_figure, wrap_text

    assert wrap_text("aa bb cc", 5) == ["aa bb", "cc"]
    assert all(len(line) <= 20 for line in wrap_text("word " * 30, 20))
    import plotly.graph_objects as go

    fig = base_layout(go.Figure(), title="x" * 10 + " " + "y" * 60)
    assert fig.layout.title.text == "x" * 10 + "<br>" + "y" * 60 and fig.layout.margin.t == 80
    assert "<br>" in empty_figure("a fairly long message " * 5).layout.annotations[0].text
