"""Small layout details: number formats, code spans, where long names may wrap, the S12 heatmap's axes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.figures.dataset import make_site_correlation_figure


def test_site_correlation_heatmap_has_no_gridlines_beside_the_matrix():
    sites = ["a", "b", "c"]
    df = pd.DataFrame([{"site_a": x, "site_b": y, "r": 1.0 if x == y else 0.2} for x in sites for y in sites])
    fig = make_site_correlation_figure(df, region="V4")
    assert fig.layout.yaxis.scaleanchor == "x"
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert axis.constrain == "domain" and axis.showgrid is False
    assert np.asarray(fig.data[0].z).shape == (3, 3)
