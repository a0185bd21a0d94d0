"""Pure figure functions, one module per page: `make_*_figure(df, **options) -> go.Figure`.

Modules: overview, dataset, sites (also the Unit and Compare pages' scatter and receptive fields), layers,
runnerups, featuremaps, controls, decoding, compare, unit; `common` holds the column check they share.
"""
