"""Colours and figure defaults used everywhere, so V4 and IT look the same on every page.

Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

# Every figure uses plotly_white. Setting it as the default once is ~30x cheaper than assigning
# `template=` on each figure (template validation costs ~35 ms a figure; profiled in bench_app).
pio.templates.default = "plotly_white"

REGION_COLORS = {"V4": "#0072B2", "IT": "#D55E00", "pIT": "#E69F00", "cIT": "#CC79A7", "aIT": "#D55E00"}
OTHER_COLOR = "#7F7F7F"
CATEGORY_COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
DIVERGING = "RdBu_r"
SEQUENTIAL = "Viridis"

#: The one `config` of every dcc.Graph: no Plotly logo; the camera button saves a PNG at twice the size.
#: every AG Grid's column defaults and pagination
GRID_COLUMNS = {
    "sortable": True,
    "filter": True,
    "resizable": True,
    "flex": 1,
    "wrapHeaderText": True,
    "autoHeaderHeight": True,
}
GRID_PAGINATION = {"pagination": True, "paginationPageSize": 10, "paginationPageSizeSelector": False}
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def region_color(region: str) -> str:
    return REGION_COLORS.get(region, OTHER_COLOR)


def base_layout(fig: go.Figure, *, title: str | None = None, height: int | None = None) -> go.Figure:
    """Common look: compact margins, readable fonts, the title on the left.

    Assigns layout items directly: `update_layout` with nested dicts costs ~10x more in plotly 7
    (it resolves every property path), which showed up as most of a cached callback's time.
    """
    layout = fig.layout
    lines = wrap_text(title, TITLE_WIDTH) if title else []
    # the title sits below the modebar's row (top right), so a long title never runs under its icons
    layout["margin"] = {"l": 60, "r": 20, "t": 40 + 20 * len(lines) if title else 20, "b": 50}
    layout["font"] = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13}
    if title:
        layout["title"] = {
            "text": "<br>".join(lines),
            "x": 0.01,
            "xanchor": "left",
            "y": 1,
            "yanchor": "top",
            "yref": "container",
            "pad": {"t": 30},
            "font": {"size": 15},
        }
    if height:
        layout["height"] = height
    return fig


TITLE_WIDTH = 58  # characters per title line: fits a half-width figure on a laptop screen


def wrap_text(text: str, width: int) -> list[str]:
    """Split `text` into lines of at most `width` characters at spaces (a longer word keeps its own line)."""
    lines: list[str] = []
    for word in str(text).split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def empty_figure(message: str, height: int = 300) -> go.Figure:
    """A blank figure that says why it is blank (wrapped, so a long command stays readable)."""
    fig = go.Figure()
    fig.add_annotation(
        text="<br>".join(wrap_text(message, 60)),
        showarrow=False,
        font={"size": 14, "color": "#555"},
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, height=height)
