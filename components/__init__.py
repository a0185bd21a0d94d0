"""Shared UI pieces and pure figure builders (DataFrame in, figure out). No SQL, no data access but
through backend.data.

Modules:
    figures/   pure figure functions, one module per page
    theme      colours, figure defaults, GRAPH_CONFIG (every dcc.Graph's config), empty figures
    shell      the navigation bar, the build status and the page container; the callback error handler
    filters    the global filter bar (dataset, model, region, layer) and its navigation
    urlstate   every view's state in its URL (query stores, the address-bar sync)
    exports    the export registry (pages register a builder per card), the menu, rendering
    empty      empty states: no database, not computed yet (with the command), bad parameters
    links      deep links to the Sites and Unit pages
    stimuli    stimulus image URLs and thumbnail strips
    ids        namespaced component ids
"""
