"""`python -m precompute rf --dataset D --model M --unit LAYER_IDX,C,Y,X`: one unit's receptive field on request.

Computes the in-silico mapping field (any model; the physiological protocol: 8 x 8 grid of 1-degree
squares) and the gradient field (models rebuilt from torch), stores them in `receptive_fields` (site_id
NULL unless the unit is some site's best unit) in one step, and prints centre and size.
"""

from __future__ import annotations

import argparse
import logging

from precompute.analyses.context import AnalysisContext
from precompute.analyses.receptive_fields import compute_unit_rfs, store_requested
from precompute.core.catalog import require_dataset
from precompute.core.errors import UserError
from precompute.core.store import Store
from precompute.models import registry

log = logging.getLogger(__name__)

METHODS = ("mapping", "gradient")


def parse_unit(text: str) -> tuple[int, int, int, int]:
    """'LAYER_IDX,C,Y,X' -> a tuple of 4 non-negative ints (UserError otherwise)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise UserError(f"--unit must be LAYER_IDX,C,Y,X (four non-negative integers, e.g. 12,5,3,4), got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def register(sub) -> None:
    """Add `rf` to the `python -m precompute` parser."""
    p = sub.add_parser(
        "rf",
        help="receptive field of one model unit (mapping and gradient; Figure S2)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="dataset whose image size and span the protocol uses")
    p.add_argument("--model", required=True, help="a model added with `models add`")
    p.add_argument(
        "--unit",
        required=True,
        action="append",
        dest="units",
        metavar="LAYER_IDX,C,Y,X",
        help="the unit (repeat for several)",
    )
    p.add_argument("--method", choices=(*METHODS, "both"), default="both", help="which method (default both)")
    p.add_argument("--seed", type=int, default=0, help="seed of the gradient method's random stimuli")
    p.set_defaults(func=cmd_rf)


def cmd_rf(args: argparse.Namespace, store: Store) -> int:
    units = [parse_unit(u) for u in args.units]
    methods = METHODS if args.method == "both" else (args.method,)
    with store.connect() as con:
        require_dataset(con, args.dataset)
        layers = registry.read_layers(con, args.model)  # UserError naming close models when unknown
        for u in units:
            if not 0 <= u[0] < len(layers):
                raise UserError(f"layer_idx {u[0]} does not exist in {args.model} (0..{len(layers) - 1})")
            la = layers[u[0]]
            if not (u[1] < la.channels and u[2] < la.height and u[3] < la.width):
                raise UserError(
                    f"unit {u} is outside layer {u[0]} ({la.layer}: {la.channels} x {la.height} x {la.width})"
                )
    unit_text = ";".join(",".join(map(str, u)) for u in units)
    with store.step(f"rf:{args.dataset}:{args.model}:{unit_text}", record=False) as con:
        # the analysis's own functions, on a context of this step (the analyses' only way to the database)
        ctx = AnalysisContext(
            con=con, store=store, dataset=args.dataset, model=args.model, seed=args.seed, analysis="rf"
        )
        estimates = compute_unit_rfs(ctx, units, methods=methods)
        rows = store_requested(ctx, estimates)
    if rows.empty:
        print(f"{args.model}: no receptive field computed (see the log: a random control has none)")
        return 0
    for r in rows.itertuples(index=False):
        where = f"  site {r.site_id}, {r.distance_deg:.2f} deg from its mapped centre" if r.site_id else ""
        print(
            f"({r.layer_idx},{r.channel},{r.y},{r.x}) {r.method:<8} centre ({_fmt(r.x_deg)}, {_fmt(r.y_deg)}) deg, "
            f"size {_fmt(r.size_deg)} deg{where}"
        )
    return 0


def _fmt(v) -> str:
    return "n/a" if v is None or v != v else f"{v:+.2f}"
