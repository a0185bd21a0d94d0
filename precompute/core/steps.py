"""Step names: the one place that builds and reads them.

Every write of the offline job happens in a named step (`Store.step(name)`), recorded in `build_info`'s
`steps_done` when it publishes. The names, and what they depend on:

    dataset:<dataset>                            an imported or synthesised dataset
    model:<model>                                a model prepared as ONNX
    match:<dataset>:<model>                      the matching run of one pair
    analyze:<analysis>:<dataset>:<model>         an analysis of one pair
    analyze:<analysis>:<dataset>                 a cross-model analysis (over every matched model)
    analyze:<analysis>@<other>:<dataset>:<model> an analysis that also reads dataset <other> (cross_dataset)

Names are made with `dataset_step`, `model_step`, `match_step` and `analyze_step`, and read with
`parse_step`; nothing else splits them.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("dataset", "model", "match", "analyze")


@dataclass(frozen=True)
class Step:
    """A parsed step name. `analysis` is the analysis name without options; `others` the datasets named
    as options (`cross_dataset@hvm-a` -> ("hvm-a",)); fields a kind does not have are None / ()."""

    kind: str
    dataset: str | None = None
    model: str | None = None
    analysis: str | None = None
    others: tuple[str, ...] = ()

    def depends_on(self, *, dataset: str | None = None, model: str | None = None) -> bool:
        """Whether this step's results derive from `dataset` or `model` (see Store.forget_derived). A
        cross-model analysis depends on every model of its dataset."""
        if dataset is not None and (self.dataset == dataset or dataset in self.others):
            return True
        if model is not None:
            if self.model == model:
                return True
            return self.kind == "analyze" and self.model is None
        return False


def dataset_step(dataset: str) -> str:
    return f"dataset:{dataset}"


def model_step(model: str) -> str:
    return f"model:{model}"


def match_step(dataset: str, model: str) -> str:
    return f"match:{dataset}:{model}"


def analyze_step(analysis: str, dataset: str, model: str | None = None) -> str:
    """`analysis` may carry options (`cross_dataset@hvm-a`, see Analysis.label); no model: cross-model."""
    return f"analyze:{analysis}:{dataset}" + (f":{model}" if model is not None else "")


def parse_step(name: str) -> Step | None:
    """The parsed step, or None for a name of no known shape (an older or foreign record)."""
    kind, *rest = name.split(":")
    if kind == "dataset" and len(rest) == 1:
        return Step(kind, dataset=rest[0])
    if kind == "model" and len(rest) == 1:
        return Step(kind, model=rest[0])
    if kind == "match" and len(rest) == 2:
        return Step(kind, dataset=rest[0], model=rest[1])
    if kind == "analyze" and len(rest) in (2, 3):
        analysis, *others = rest[0].split("@")
        return Step(
            kind, dataset=rest[1], model=rest[2] if len(rest) == 3 else None, analysis=analysis, others=tuple(others)
        )
    return None
