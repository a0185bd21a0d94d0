"""Pure figure functions, one module per page: `make_*_figure(df, **options) -> go.Figure`."""
