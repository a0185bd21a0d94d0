"""Empty figures say what is missing and give the whole command that computes it (a reviewer ran the
commands as printed: `analyze --only rotations` without --dataset/--model fails)."""

from __future__ import annotations

import pandas as pd

from backend.commands import analyze_command
from components.figures import controls, decoding, overview
from components.figures.sites import make_unit_rf_figure


def _message(fig) -> str:
    return fig.layout.annotations[0].text.replace("<br>", " ")


def test_analyze_command_names_dataset_model_and_analysis():
    assert analyze_command("hvm", "lite0", "rotations") == (
        "python -m precompute analyze --dataset hvm --model lite0 --only rotations"
    )
    assert analyze_command("hvm", None, "model_comparison") == (
        "python -m precompute analyze --dataset hvm --only model_comparison"
    )


def test_not_computed_figures_give_the_full_command():
    cmd = analyze_command("hvm", "lite0", "decoding")
    runs = pd.DataFrame(columns=["region", "train_population", "test_population", "variant", "accuracy", "chance"])
    assert cmd in _message(decoding.make_decoding_figure(runs, region="V4", variant="in_sample", command=cmd))
    conf = pd.DataFrame(
        columns=["train_population", "test_population", "variant", "true_category", "predicted_category", "fraction"]
    )
    fig = decoding.make_confusion_figure(conf, train="neural", test="neural", variant="in_sample", command=cmd)
    assert cmd in _message(fig)
    rot = pd.DataFrame(columns=["model", "region", "basis", "run", "value"])
    rcmd = analyze_command("hvm", "lite0", "rotations")
    assert rcmd in _message(controls.make_rotation_figure(rot, region="V4", command=rcmd))
    units = pd.DataFrame(columns=["method", "x_deg", "y_deg", "size_deg", "map", "map_size", "extent_deg"])
    fcmd = analyze_command("hvm", "lite0", "receptive_fields")
    assert fcmd in _message(make_unit_rf_figure(units, None, site_id="s", model="lite0", command=fcmd))


def test_decoding_computed_elsewhere_says_what_is_there_not_that_nothing_is():
    runs = pd.DataFrame(
        {
            "region": "IT",
            "train_population": "matched",
            "test_population": "matched",
            "variant": "heldout",
            "accuracy": [0.5],
            "chance": 0.125,
        }
    )
    text = _message(decoding.make_decoding_figure(runs, region="V4", variant="in_sample", command="x"))
    assert "not computed for V4" in text and "computed: IT heldout" in text
    conf = pd.DataFrame(
        {
            "train_population": "neural",
            "test_population": "neural",
            "variant": "heldout",
            "true_category": ["a"],
            "predicted_category": ["a"],
            "fraction": [1.0],
        }
    )
    text = _message(decoding.make_confusion_figure(conf, train="matched", test="neural", variant="heldout"))
    assert "No confusion matrix for" in text and "held" in text


def test_overview_s1_and_s4_give_the_command_for_the_chosen_model():
    curve = pd.DataFrame(columns=["model", "region", "fraction", "value", "ci_low", "ci_high"])
    cmd = analyze_command("hvm", "lite0", "crossval")
    assert cmd in _message(overview.make_selection_curve_figure(curve, "lite0", cmd))
    pcmd = analyze_command("hvm", "lite0", "pls")
    single = pd.DataFrame({"site_id": ["s"], "region": ["V4"], "value": [0.5]})
    assert pcmd in _message(overview.make_pls_comparison_figure(single, pd.DataFrame(), "lite0", pcmd))
