"""The command line, `python -m precompute <command>`: the top layer, which parses and prints only.

- `main`      the parser (`build_parser`) and the entry point (`main`): one clear line for a UserError
- `datasets`  datasets synth | import | list | show | remove
- `models`    models add | list | show | remove | zoo
- `match`     run (match a dataset to models) and batch (a TOML file of everything, local or Dask)
- `analyze`   analyze (the registered statistics and analyses)
- `rf`        rf (receptive fields of chosen model units)
- `demo`      demo (build or resume the embedded default)

Each module has `register(subparsers)`; each handler is `func(args, store) -> exit code` and calls one
function of the layers below with a request built from its arguments.
"""
