"""`python -m precompute models ...`: add (zoo, ONNX file, control), list, show, remove, zoo.

  models add NAME --zoo ZOO_NAME [--untrained [--seed S]] [--weights PATH] [--replace]
  models add NAME --onnx FILE [--input-size N] [--mean M M M --std S S S] [--layers auto|T1,T2,...]
                  [--layout nchw|nhwc] [--replace]
  models add NAME --control pixels [--input-size N] [--replace]
  models add NAME --control random --reference M [--seed S] [--replace]
  models add NAME --control untrained --reference ZOO_NAME [--seed S] [--replace]
  models list | show NAME | remove NAME | zoo

Control names by convention (DESIGN.md): pixels, pixels-<size>, random-M, untrained-M.
See docs/add-your-model.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from precompute.core.errors import UserError


def register(sub) -> None:
    """Add `models` and its subcommands to the `python -m precompute` parser."""
    p = sub.add_parser("models", help="add, list, show and remove models", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    msub = p.add_subparsers(dest="models_command", metavar="<models command>", required=True)

    a = msub.add_parser("add", help="add a model from the zoo, an ONNX file, or a control",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("name", help="the model's name in Unitscope (e.g. efficientnet-lite0, my-resnet)")
    what = a.add_mutually_exclusive_group(required=True)
    what.add_argument("--zoo", metavar="ZOO_NAME",
                      help="a zoo name (see `models zoo`), torchvision:<fn> or timm:<name>")
    what.add_argument("--onnx", type=Path, metavar="FILE", help="an ONNX file")
    what.add_argument("--control", choices=("pixels", "random", "untrained"), help="a control model")
    a.add_argument("--untrained", action="store_true", help="--zoo: random-init weights (seed --seed)")
    a.add_argument("--weights", type=Path, metavar="PATH", help="--zoo: load this local state dict (strict)")
    a.add_argument("--input-size", type=int, metavar="N", help="--onnx: input side for dynamic-size graphs; "
                   "--control pixels: image side (default 224)")
    a.add_argument("--mean", type=float, nargs="+", metavar="M", help="--onnx: per-channel mean (default ImageNet's)")
    a.add_argument("--std", type=float, nargs="+", metavar="S", help="--onnx: per-channel std (default ImageNet's)")
    a.add_argument("--layers", default=None, metavar="auto|T1,T2,...",
                   help="--onnx: auto (activations and blocks by op type) or tensor names, in order")
    a.add_argument("--layout", choices=("nchw", "nhwc"),
                   help="--onnx: every layer's layout (default: detected per layer)")
    a.add_argument("--reference", metavar="M", help="--control random: a stored model; untrained: a zoo name")
    a.add_argument("--seed", type=int, default=None, help="seed of random controls and --untrained (default 0)")
    a.add_argument("--replace", action="store_true",
                   help="replace a model of that name (removes every result derived from it)")
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


def _reject(args, allowed: set[str], mode: str) -> None:
    """UserError for options that do not apply to this kind of add."""
    options = {"untrained": "--untrained", "weights": "--weights", "input_size": "--input-size", "mean": "--mean",
               "std": "--std", "layers": "--layers", "layout": "--layout", "reference": "--reference",
               "seed": "--seed"}
    bad = [flag for key, flag in options.items() if key not in allowed and getattr(args, key) not in (None, False)]
    if bad:
        raise UserError(f"{', '.join(bad)} do(es) not apply to {mode}")


def check_add_args(args) -> None:
    """UserError for options that do not go together (checked before adding; a batch file's check uses it)."""
    if args.zoo:
        from precompute.models import zoo

        _reject(args, {"untrained", "weights", "seed"}, "--zoo")
        if args.seed is not None and not args.untrained:
            raise UserError("--seed applies to --untrained zoo models only")
        zoo.get_entry(args.zoo)  # an unknown name: UserError with the close names
    elif args.onnx:
        _reject(args, {"input_size", "mean", "std", "layers", "layout"}, "--onnx")
    else:
        allowed = {"input_size"} if args.control == "pixels" else {"reference", "seed"}
        _reject(args, allowed, f"--control {args.control}")


def cmd_add(args, store) -> int:
    from precompute.models import add

    check_add_args(args)
    seed = 0 if args.seed is None else args.seed
    if args.zoo:
        record = add.add_zoo_model(store, args.name, args.zoo, untrained=args.untrained, weights=args.weights,
                                   replace=args.replace, seed=seed)
    elif args.onnx:
        record = add.add_onnx_model(store, args.name, args.onnx, input_size=args.input_size, mean=args.mean,
                                    std=args.std, layers=args.layers or "auto", layout=args.layout,
                                    replace=args.replace)
    else:
        record = add.add_control(store, args.name, args.control, reference=args.reference,
                                 input_size=args.input_size, seed=seed, replace=args.replace)
    with store.connect() as con:
        _print_summary(con, record.model)
    return 0


def cmd_list(args, store) -> int:
    from precompute.models import registry

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
    from precompute.models import registry

    with store.connect() as con:
        row = registry.read_model(con, args.name)
        df = registry.layers_frame(con, args.name)
    for key in ("model", "kind", "family", "source", "reference_model", "input_size", "in_channels", "mean", "std",
                "imagenet_top1", "imagenet_top5", "parameters", "layout", "onnx_path", "sha256"):
        value = row.get(key)
        if value is not None and value == value:
            print(f"{key:16} {value}")
    print()
    print(f"{'idx':>4} {'layer':40} {'op':10} {'C':>6} {'H':>5} {'W':>5} {'units':>12}  layout")
    for r in df.itertuples():
        layout = r.layout if isinstance(r.layout, str) and r.layout else row.get("layout") or "nchw"
        print(f"{r.layer_idx:>4} {r.layer:40} {r.op_type or '':10} {r.channels:>6} {r.height:>5} {r.width:>5} "
              f"{r.units:>12,}  {layout}")
    total = int(df["units"].sum())
    print(f"{len(df)} layers, {total:,} units ({total / 1e6:.2f} M)")
    return 0


def cmd_remove(args, store) -> int:
    from precompute.models import add

    add.remove(store, args.name)
    print(f"removed {args.name} and every result derived from it")
    return 0


def cmd_zoo(args, store) -> int:
    from precompute.models.zoo import ZOO

    print(f"{'name':22} {'library':12} {'constructor':24} {'input':>5} {'top-1':>6} {'top-5':>6}  paper")
    for e in ZOO.values():
        t1 = "" if e.imagenet_top1 is None else f"{e.imagenet_top1:.1f}"
        t5 = "" if e.imagenet_top5 is None else f"{e.imagenet_top5:.1f}"
        print(f"{e.name:22} {e.library:12} {e.constructor or '-':24} {e.input_size:>5} {t1:>6} {t5:>6}  "
              f"{'yes' if e.in_paper else ''}{'  ' + e.note if e.note else ''}")
    print("Any torchvision or timm model: torchvision:<fn> or timm:<name>.")
    return 0


def _print_summary(con, model: str) -> None:
    from precompute.models import registry

    row = registry.read_model(con, model)
    print(f"added {model} ({row['kind']}): {row['n_layers']} layers, {int(row['total_units']):,} units, "
          f"input {row['input_size']} px")
