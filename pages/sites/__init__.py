"""Sites page (/sites): one site, its best units, and the scatter of neural vs unit responses (Figure 2).

URL: /sites?dataset=...&model=...&region=V4&site=...&rank=1

Modules, one per card:
    page        the page's registration (path, title, layout)
    layout      the filter bar, the controls and the cards, from the validated URL
    common      component ids, the rank rule, the validated view (shared by the cards and their exports)
    selection   the site and rank controls: what follows the site, and the URL
    scatter     Figure 2 (+ export), the stimuli that drive the site and its unit, the hovered stimulus
    topk        the top-K table (rank <-> row sync; + export) and the runner-ups histogram (+ export)
    site_panel  the site's statistics and receptive fields (Figure S2)
"""

from pages.sites.common import N_TOP_STIMULI, ids, model_top_k, parse_rank, rank_message, resolve_view, valid_rank
from pages.sites.layout import layout
from pages.sites.scatter import export_scatter, scatter_card, show_hovered, update_scatter
from pages.sites.selection import update_site, update_url
from pages.sites.site_panel import site_stats
from pages.sites.topk import export_runnerups, export_topk, rank_table_sync, sync_rank_and_table, topk_rows

__all__ = [
    "N_TOP_STIMULI",
    "export_runnerups",
    "export_scatter",
    "export_topk",
    "ids",
    "layout",
    "model_top_k",
    "parse_rank",
    "rank_message",
    "rank_table_sync",
    "resolve_view",
    "scatter_card",
    "show_hovered",
    "site_stats",
    "sync_rank_and_table",
    "topk_rows",
    "update_scatter",
    "update_site",
    "update_url",
    "valid_rank",
]
