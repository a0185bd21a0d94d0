"""Dataset page (/dataset): stimuli gallery, sites table, site correlations (Figure S12) and receptive
fields (Figure S2).

URL: /dataset?dataset=...&category=...&object=...&page=...&region=V4&site=...

Modules, one per card:
    page              the page's registration (path, title, layout)
    layout            the header and the cards, from the validated URL state
    state             URL parameters: checked (backend.params), written back, dataset switch
    common            component ids, the stimulus filter
    gallery           the category/object filters, the thumbnails and the stimulus modal
    sites_table       the sites table and reliability histogram (+ its export)
    correlations      Figure S12 (+ its export)
    receptive_fields  Figure S2: a site's mapped field and every site's centre
"""

from pages.dataset.common import ALL_VALUE, PAGE_SIZE, filter_stimuli, ids
from pages.dataset.correlations import correlations_figure, export_correlations, update_correlations
from pages.dataset.gallery import gallery_view, open_stimulus, update_gallery, update_objects
from pages.dataset.layout import layout
from pages.dataset.receptive_fields import update_rf_map
from pages.dataset.sites_table import SITE_TABLE_COLUMNS, export_sites, select_site_from_table
from pages.dataset.state import page_count, parse_page, state_query, switch_dataset, update_url, validated_state

__all__ = [
    "ALL_VALUE",
    "PAGE_SIZE",
    "SITE_TABLE_COLUMNS",
    "correlations_figure",
    "export_correlations",
    "export_sites",
    "filter_stimuli",
    "gallery_view",
    "ids",
    "layout",
    "open_stimulus",
    "page_count",
    "parse_page",
    "select_site_from_table",
    "state_query",
    "switch_dataset",
    "update_correlations",
    "update_gallery",
    "update_objects",
    "update_rf_map",
    "update_url",
    "validated_state",
]
