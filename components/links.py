"""Links between views: every place that shows a site or a unit links to its page (deep links)."""

from __future__ import annotations

from urllib.parse import quote_plus

from components.urlstate import to_query


def unit_href(
    dataset: str,
    model: str,
    layer_idx: int,
    channel: int,
    y: int,
    x: int,
    *,
    region: str | None = None,
    site: str | None = None,
) -> str:
    """The Unit page of one unit (optionally with the site its scatter is drawn against)."""
    return "/unit" + to_query(
        {
            "dataset": dataset,
            "model": model,
            "region": region,
            "layer_idx": int(layer_idx),
            "channel": int(channel),
            "y": int(y),
            "x": int(x),
            "site": site,
        }
    )


def unit_hrefs(dataset: str, model: str, region: str, layer_idx: int, rows) -> list[str]:
    """`unit_href` for many units of one layer at once; `rows` yield (channel, y, x, site).

    The constant part is encoded once (a feature-map table has one link per channel, up to ~1,300).
    """
    prefix = unit_href(dataset, model, layer_idx, 0, 0, 0, region=region).split("&channel=")[0]
    return [f"{prefix}&channel={int(c)}&y={int(y)}&x={int(x)}&site={quote_plus(str(site))}" for c, y, x, site in rows]


def site_href(dataset: str, model: str, region: str, site: str, rank: int | None = None) -> str:
    """The Sites page of one site (optionally at a rank)."""
    return "/sites" + to_query(
        {
            "dataset": dataset,
            "model": model,
            "region": region,
            "site": site,
            "rank": None if rank in (None, 1) else int(rank),
        }
    )


def markdown_link(text: str, href: str) -> str:
    """A Markdown link for an AG Grid cell (`cellRenderer: "markdown"`); brackets in text are escaped."""
    text = str(text).replace("[", "\\[").replace("]", "\\]")
    return f"[{text}]({href})"


LINK_COLUMN = {"cellRenderer": "markdown", "sortable": False, "filter": False}
