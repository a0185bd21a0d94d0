"""`python -m precompute models ...`: add (zoo, ONNX file, control), list, show, remove, zoo.

`models add`'s options are the fields of AddRequest (precompute/models/request.py, whose docstring is the
command's help); see docs/add-your-model.md.
"""

from __future__ import annotations

import argparse

from precompute.core.options import add_arguments, from_namespace
from precompute.models import add, registry
from precompute.models import request as model_request
from precompute.models.request import AddRequest, add_model
from precompute.models.zoo import ZOO


def register(sub) -> None:
    """Add `models` and its subcommands to the `python -m precompute` parser."""
    p = sub.add_parser(
        "models",
        help="add, list, show and remove models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    msub = p.add_subparsers(dest="models_command", metavar="<models command>", required=True)

    a = msub.add_parser(
        "add",
        help="add a model from the zoo, an ONNX file, or a control",
        description=model_request.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(
        a,
        AddRequest,
        positional=("name",),
        exclusive=("zoo", "onnx", "control"),
        metavars={
            "zoo": "ZOO_NAME",
            "onnx": "FILE",
            "weights": "PATH",
            "input_size": "N",
            "mean": "M",
            "std": "S",
            "layers": "auto|T1,T2,...",
            "reference": "M",
        },
    )
    a.set_defaults(func=cmd_add)

    lst = msub.add_parser("list", help="list the stored models")
    lst.set_defaults(func=cmd_list)
    show = msub.add_parser("show", help="a model's details and its layers")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)
    rm = msub.add_parser("remove", help="remove a model and every result derived from it")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)
    z = msub.add_parser("zoo", help="list the zoo's model names")
    z.set_defaults(func=cmd_zoo)


def cmd_add(args, store) -> int:
    record = add_model(store, from_namespace(AddRequest, args))
    with store.connect() as con:
        _print_summary(con, record.model)
    return 0


def cmd_list(args, store) -> int:
    with store.connect() as con:
        df = registry.list_models(con)
    if df.empty:
        print("no models yet: `python -m precompute models add --help`")
        return 0
    print(f"{'model':32} {'kind':10} {'input':>5} {'layers':>6} {'units':>12} {'top-1':>6}  source")
    for r in df.itertuples():
        top1 = "" if r.imagenet_top1 is None or r.imagenet_top1 != r.imagenet_top1 else f"{r.imagenet_top1:.1f}"
        print(f"{r.model:32} {r.kind:10} {r.input_size:>5} {r.n_layers:>6} {r.total_units:>12,} {top1:>6}  {r.source}")
    return 0


def cmd_show(args, store) -> int:
    with store.connect() as con:
        row = registry.read_model(con, args.name)
        df = registry.layers_frame(con, args.name)
    for key in (
        "model",
        "kind",
        "family",
        "source",
        "reference_model",
        "input_size",
        "in_channels",
        "mean",
        "std",
        "imagenet_top1",
        "imagenet_top5",
        "parameters",
        "layout",
        "onnx_path",
        "sha256",
    ):
        value = row.get(key)
        if value is not None and value == value:
            print(f"{key:16} {value}")
    print()
    print(f"{'idx':>4} {'layer':40} {'op':10} {'C':>6} {'H':>5} {'W':>5} {'units':>12}  layout")
    for r in df.itertuples():
        layout = r.layout if isinstance(r.layout, str) and r.layout else row.get("layout") or "nchw"
        print(
            f"{r.layer_idx:>4} {r.layer:40} {r.op_type or '':10} {r.channels:>6} {r.height:>5} {r.width:>5} "
            f"{r.units:>12,}  {layout}"
        )
    total = int(df["units"].sum())
    print(f"{len(df)} layers, {total:,} units ({total / 1e6:.2f} M)")
    return 0


def cmd_remove(args, store) -> int:
    add.remove(store, args.name)
    print(f"removed {args.name} and every result derived from it")
    return 0


def cmd_zoo(args, store) -> int:
    print(f"{'name':22} {'library':12} {'constructor':24} {'input':>5} {'top-1':>6} {'top-5':>6}  paper")
    for e in ZOO.values():
        t1 = "" if e.imagenet_top1 is None else f"{e.imagenet_top1:.1f}"
        t5 = "" if e.imagenet_top5 is None else f"{e.imagenet_top5:.1f}"
        print(
            f"{e.name:22} {e.library:12} {e.constructor or '-':24} {e.input_size:>5} {t1:>6} {t5:>6}  "
            f"{'yes' if e.in_paper else ''}{'  ' + e.note if e.note else ''}"
        )
    print("Any torchvision or timm model: torchvision:<fn> or timm:<name>.")
    return 0


def _print_summary(con, model: str) -> None:
    row = registry.read_model(con, model)
    print(
        f"added {model} ({row['kind']}): {row['n_layers']} layers, {int(row['total_units']):,} units, "
        f"input {row['input_size']} px"
    )
