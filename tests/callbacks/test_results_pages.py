"""Results pages (Sites, Layers, Runner-ups, Feature maps): layouts, callbacks and URL validation."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest

from backend.commands import run_command
from tests.support.factories import TOY_LAYERS, mini_tables, toy_activations
from tests.support.tree import find, of_type, text, walk


def page(name):
    importlib.import_module("app")
    return importlib.import_module(f"pages.{name}")


@pytest.mark.parametrize("name", ["sites", "layers", "runnerups", "featuremaps"])
def test_pages_without_matches_say_which_command_to_run(app_env, name):
    import dash

    layout = page(name).layout(dataset="mini")
    assert "Matching on mini not computed yet" in text(layout)
    assert [c.children for c in of_type(layout, dash.html.Code)] == [run_command("mini")]
    assert run_command("mini") == "python -m precompute run --dataset mini --model efficientnet-lite0"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sites", {"model": "nope"}, "not matched on mini"),
        ("sites", {"site": "V4-000", "region": "IT"}, "unknown site"),
        ("sites", {"rank": "11"}, "out of range"),
        ("sites", {"rank": "1 OR 1=1"}, "whole number"),
        ("sites", {"rank": "2.5"}, "whole number"),
        ("layers", {"region": "<script>"}, "unknown region"),
        ("featuremaps", {"layer": "7"}, "out of range"),
        ("featuremaps", {"layer": "../../x"}, "layer index"),
        ("featuremaps", {"top": "5"}, "top must be"),
    ],
)
def test_bad_parameters_get_a_friendly_message(results_env, name, params, message):
    layout = page(name).layout(dataset="mini", **params)
    assert layout.id == "friendly-error", text(layout)[:300]
    assert message in text(layout)


def test_site_scatter_shows_the_site_against_its_unit(results_env):
    sites = page("sites")
    fig, strips = sites.update_scatter("V4-001", 1, "mini", "toy")
    tables = mini_tables()
    points = np.concatenate([trace.x for trace in fig.data if trace.mode == "markers"])
    unit = np.concatenate([trace.y for trace in fig.data if trace.mode == "markers"])
    assert len(points) == 24
    r = np.corrcoef(points, unit)[0, 1]
    # the plotted unit is the site's rank-1 unit: its r is the best over every unit of the toy model
    acts = np.concatenate([a.reshape(24, -1) for a in toy_activations(24)], axis=1)
    z = tables.responses[1]
    all_r = [np.corrcoef(z, acts[:, j])[0, 1] for j in range(acts.shape[1]) if acts[:, j].std() > 0]
    assert r == pytest.approx(max(all_r), abs=1e-5)
    import dash

    headings = [text(h) for h in of_type(strips, dash.html.H6)]
    assert headings[0] == "V4-001: top 8" and headings[1].startswith("unit at rank 1: top 8")
    assert [
        len(of_type(strip, dash.html.Img))
        for strip in of_type(strips, dash.html.Div)
        if strip.className == "stimulus-strip"
    ] == [8, 8]


@pytest.mark.parametrize("rank", [0, 500, 2.5, -3, None, "x"])
def test_invalid_rank_says_the_range_and_shows_no_stale_unit(results_env, rank):
    import dash

    sites = page("sites")
    fig, strips = sites.update_scatter("V4-001", rank, "mini", "toy", "V4")
    assert "from 1 to 10" in fig.layout.annotations[0].text
    assert strips is not dash.no_update and "from 1 to 10" in text(strips) and "unit at rank" not in text(strips)
    assert not of_type(strips, dash.html.Img)  # no stale unit's stimuli
    # the table drops its selected row and the field is marked invalid
    assert sites.rank_table_sync(False, [{"rank": 5}], rank, 10) == (dash.no_update, [], True)
    # the address keeps the last valid view rather than silently meaning rank 1
    assert sites.update_url("V4-001", rank, "mini", "toy", "V4") is dash.no_update


def test_valid_rank_selects_its_row_and_is_in_the_url(results_env):
    import dash

    sites = page("sites")
    _, strips = sites.update_scatter("V4-001", 3.0, "mini", "toy", "V4")
    assert text(of_type(strips, dash.html.H6)[1]).startswith("unit at rank 3: top 8")
    assert sites.rank_table_sync(False, [{"rank": 5}], 3, 10) == (
        dash.no_update,
        {"function": "params.data.rank === 3"},
        False,
    )
    assert sites.rank_table_sync(False, [{"rank": 3}], 3, 10) == (dash.no_update, dash.no_update, False)
    assert sites.rank_table_sync(True, [{"rank": 4}], 3, 10) == (4, dash.no_update, False)
    assert "rank=3" in sites.update_url("V4-001", 3, "mini", "toy", "V4")
    assert "rank" not in sites.update_url("V4-001", 1, "mini", "toy", "V4")


def test_site_panel_lists_top_units_and_stats(results_env):
    rows, hist, stats, rf, unit_rf, _note = page("sites").update_site("IT-005", "mini", "toy", "IT")
    assert "not computed" in unit_rf.layout.annotations[0].text
    assert [row["rank"] for row in rows] == list(range(1, 11))
    assert all(a["r"] >= b["r"] for a, b in itertools.pairwise(rows))
    assert {row["layer"] for row in rows} <= {name for name, *_ in TOY_LAYERS}
    values = {
        text(label): text(value)
        for label, value in ((c.children[0], c.children[1]) for c in walk(stats) if getattr(c, "xs", None) == 6)
    }
    assert values["held-out r"] == "not computed" and values["best r (in-sample)"] == f"{rows[0]['r']:.3f}"


def test_layers_callback_counts_every_site_once(results_env):
    hist, spread, depth, family = page("layers").update_layers("V4", "mini", "toy")
    assert sum(hist.data[0].y) == 4  # 4 V4 sites, one best unit each
    assert len(depth.data) == 2  # V4 and IT
    assert {t.name for t in family.data} == {"toy", "toy2"}


def test_featuremaps_callback(results_env):
    counts, positions, validated, rows, cols = page("featuremaps").update_featuremaps("1", "mini", "toy", "V4", 0)
    assert sum(counts.data[0].y) == 4
    assert len(rows) == TOY_LAYERS[0][1]  # one row per feature map
    from tests.support.factories import brute_force_r

    r = brute_force_r(mini_tables().responses[:4], toy_activations(24))  # the 4 V4 sites
    _, c, h, w = TOY_LAYERS[0]
    for row in rows:
        block = r[:, row["channel"] * h * w : (row["channel"] + 1) * h * w]
        assert row["best_r"] == pytest.approx(np.nanmax(block), abs=1e-5)
        assert row["sites_r>0.3"] == int((np.nanmax(block, axis=1) > 0.3).sum())


def test_runnerups_heatmap_has_every_site_and_rank(results_env):
    fig = page("runnerups").update_heatmap("IT", "mini", "toy")
    assert fig.data[0].z.shape == (5, 10)


@pytest.mark.parametrize("name", ["layers", "runnerups"])
def test_layers_and_runnerups_write_their_full_view_into_the_url(results_env, name):
    module = page(name)
    layout = module.layout(dataset="mini")
    find(layout, {"type": "url-query", "page": name})
    assert module.update_url("IT", "mini", "toy") == "?dataset=mini&model=toy&region=IT"


def test_navigation_resets_dependent_filters():
    from components.filters import navigation_query

    assert navigation_query("dataset", "d2", "m", "V4", 3, {"site": "s"}) == "?dataset=d2&region=V4"
    assert navigation_query("model", "d", "m2", "IT", 3, {"site": "s"}) == "?dataset=d&model=m2&region=IT&site=s"
    assert navigation_query("region", "d", "m", "IT", 3, {"site": "s"}) == "?dataset=d&model=m&region=IT&layer=3"
    expected = "?dataset=d&model=m&region=IT&layer=4&top=all"
    assert navigation_query("layer", "d", "m", "IT", 4, {"top": "all"}) == expected


def test_region_change_keeps_controls_that_do_not_depend_on_the_region():
    from components.filters import navigation_query

    local = {"variant": "heldout", "condition": "neural-neural"}
    expected = "?dataset=d&model=m&region=IT&variant=heldout&condition=neural-neural"
    assert navigation_query("region", "d", "m", "IT", None, local) == expected
    expected = "?dataset=d&model=m&region=IT&layer=2&top=all"
    assert navigation_query("region", "d", "m", "IT", 2, {"top": "all"}) == expected
    # the site is per region: it goes, the rest stays
    assert navigation_query("region", "d", "m", "IT", None, {"site": "V4-000", "top": "all"}) == (
        "?dataset=d&model=m&region=IT&top=all"
    )


def test_overview_leaderboard_and_figures(results_env):
    overview = page("overview")
    import dash_ag_grid as dag

    layout = overview.layout(dataset="mini")
    assert isinstance(find(layout, "overview-leaderboard"), dag.AgGrid)
    rows, regions, accuracy = overview.update_metric("neural_correlation", "mini")
    assert {row["model"] for row in rows} == {"toy", "toy2"}
    assert all(row["IT_ci"].startswith("[") for row in rows)
    selection, pls, comparisons = overview.update_model("toy", "mini")
    assert len(comparisons) == 2
    error = find(overview.layout(dataset="mini", metric="heldout_split_half"), "friendly-error")
    assert "unknown metric 'heldout_split_half'" in text(error)


def test_overview_size_axis_is_in_the_url_and_restored_from_it(results_env):
    overview = page("overview")
    query = overview.update_url("neural_correlation", "IT", "toy", "total_units", "mini")
    assert "size=total_units" in query
    layout = overview.layout(dataset="mini", metric="neural_correlation", size="total_units")
    assert find(layout, overview.ids("size-axis")).value == "total_units"
    assert find(overview.layout(dataset="mini"), overview.ids("size-axis")).value == "parameters"
    assert "size must be one of" in text(find(overview.layout(dataset="mini", size="bogus"), "friendly-error"))


def test_overview_without_scores_says_what_to_run(app_env):
    import dash

    codes = [c.children for c in of_type(page("overview").layout(dataset="mini"), dash.html.Code)]
    assert run_command("mini") in codes


def test_compare_page_plots_both_models_for_the_site(results_env):
    compare = page("compare")
    pair, a, b, unit_a, unit_b, _, _, query = compare.update_compare("toy", "toy2", "IT-005", "IT", "mini")
    assert len(pair.data[0].x) == 5
    assert a.layout.yaxis.title.text.startswith("toy<br>") and b.layout.yaxis.title.text.startswith("toy2<br>")
    assert "b=toy2" in query and "site=IT-005" in query
    # the two models' scatters share one scale, wide enough for every point of both
    assert (
        tuple(a.layout.xaxis.range)
        == tuple(b.layout.xaxis.range)
        == tuple(a.layout.yaxis.range)
        == tuple(b.layout.yaxis.range)
    )
    lim = a.layout.xaxis.range[1]
    points = np.concatenate([np.abs(np.concatenate([t.x, t.y])) for f in (a, b) for t in f.data if t.mode == "markers"])
    assert points.max() <= lim and points.max() == pytest.approx(lim / 1.05)
    # each scatter links to its model's best unit of the site
    best = {m: page("compare").data.site_matches("mini", m, "IT-005").iloc[0] for m in ("toy", "toy2")}
    for link, m in ((unit_a, "toy"), (unit_b, "toy2")):
        row = best[m]
        assert link.href == (
            f"/unit?dataset=mini&model={m}&region=IT&layer_idx={row.layer_idx}&channel={row.channel}"
            f"&y={row.y}&x={row.x}&site=IT-005"
        )
    assert compare.layout(dataset="mini", b="nope").id == "friendly-error"


def test_controls_and_decoding_pages_show_empty_states_until_computed(results_env):
    rot, ctl, query = page("controls").update_controls("V4", "mini")
    assert "not computed" in rot.layout.annotations[0].text
    assert len(ctl.data[0].x) == 2
    acc, conf, _ = page("decoding").update_decoding("in_sample", "matched-neural", "mini", "toy", "V4")
    assert "not computed" in acc.layout.annotations[0].text
    assert page("decoding").layout(dataset="mini", variant="bogus").id == "friendly-error"


def test_notes_from_analyses_are_shown_where_their_results_would_be(results_env):
    """An analysis that stored nothing on purpose says why (build_info['analysis_notes']): the Controls
    page under the rotations, the Sites page under the unit's receptive field; cleared notes vanish."""
    from precompute.analyses.common import NOTES_KEY

    with results_env.step("test:notes", record=False) as con:
        results_env.record(con, NOTES_KEY, "rotations:mini:toy", "layer 0 has a single feature map")
        results_env.record(con, NOTES_KEY, "receptive_fields:mini:toy", "toy is a random control")
        results_env.record(con, NOTES_KEY, "receptive_fields:mini:other", None)
        results_env.record(con, NOTES_KEY, "receptive_fields:elsewhere:toy", "not this dataset")
    import dash

    layout = page("controls").layout(dataset="mini")
    notes = [text(item) for item in of_type(layout, dash.html.Li) if "toy:" in text(item)]
    assert notes == ["toy: layer 0 has a single feature map"]
    *_, note = page("sites").update_site("IT-005", "mini", "toy", "IT")
    assert [text(item) for item in of_type(note, dash.html.Li)] == ["toy is a random control"]
    *_, none = page("sites").update_site("IT-005", "mini", "other", "IT")
    assert none is None
