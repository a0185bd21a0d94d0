"""`python -m precompute analyze`: named statistics and analyses over the match tables.

Every analysis is an `Analysis` registered by name (`register(analysis)`) in one of the modules listed
in `ANALYSIS_MODULES`; issue 7's analyses add their modules to that list. For each (dataset, model) an
analysis runs in its own step `analyze:<name>:<dataset>:<model>` (one transaction, published when it
finishes, skipped when already done on the same inputs unless --force); an analysis over several
models (a paired comparison) runs once per dataset as `analyze:<name>:<dataset>` over every model
matched on it, and is redone when that set of models changed. A rerun replaces the previous rows of
that (dataset, model) only. `AnalysisContext` is what an analysis sees: the step's connection and
loaders for the dataset and match tables, aligned by id.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from precompute.core.errors import UserError
from precompute.core.failpoints import failpoint
from precompute.core.store import Store, steps_done

log = logging.getLogger(__name__)

#: Modules whose import registers analyses, in run order (an analysis may read what an earlier one wrote).
ANALYSIS_MODULES: tuple[str, ...] = (
    "precompute.statistics.scores",
    "precompute.statistics.ceiling",
    "precompute.statistics.one_to_one",
    "precompute.statistics.depth",
    "precompute.statistics.comparisons",
    # null, pls and crossval share one streaming pass (precompute/statistics/streaming_pass.py): the first
    # of them computes it for all; heldout_split_half (last in crossval) reuses it
    "precompute.statistics.null",
    "precompute.statistics.pls",
    "precompute.statistics.crossval",
    # select on one dataset, evaluate on another (runs only with --select-on)
    "precompute.statistics.cross_dataset",
    # the paper's analyses (issue 7)
    "precompute.analyses.runnerups",
    "precompute.analyses.featuremaps",
    "precompute.analyses.rotations",
    "precompute.analyses.decoding",
    "precompute.analyses.receptive_fields",
)

PROTOCOLS = ("default", "paper")
DEFAULT_SEED = 0
#: `default_models` values: which demo models an analysis runs on in the default demo.
DEMO_SCOPES = ("all", "primary", "main")
#: Tables an analysis writes through the context, with the columns that identify a (dataset, model).
RESULT_TABLES = ("scores", "layer_scores", "site_scores", "selection_curve")


@dataclass(frozen=True)
class Analysis:
    """A named statistic or analysis.

    run:               computes and writes its rows through the context (inside the step's transaction)
    requires_matching: the model must have match tables on the dataset (`python -m precompute run`)
    default_models:    demo scope: "all" (Lite0/1/2 and the controls), "main" (Lite0 only: the analyses
                       that re-run the model and would not fit the default demo's 30 minutes on a 2-core
                       machine; `demo --full` runs them everywhere) or "primary" (Lite0 and its
                       controls, DESIGN.md's "every analysis on Lite0 and its controls")
    cross_model:       runs once per dataset over every matched model (ctx.model is None, ctx.models set)
    outputs:           (table, metric) pairs it writes; a rerun deletes them for its (dataset, model) first;
                       a metric may name options as `{option}` (formatted with the run's options)
    dataset_options:   options (CLI flags) that name another dataset the analysis reads (e.g. `select_on`
                       for `cross_dataset`): required, so the analysis only runs when they are given (a
                       run of "all analyses" skips it otherwise); the model must be matched on that
                       dataset; its step is `analyze:<name>@<value>:<dataset>:<model>` and is redone when
                       that dataset or its match run changes too
    """

    name: str
    description: str
    run: Callable[[AnalysisContext], None]
    requires_matching: bool = True
    default_models: str = "all"
    cross_model: bool = False
    outputs: tuple[tuple[str, str], ...] = ()
    dataset_options: tuple[str, ...] = ()

    def label(self, options: dict[str, str] | None = None) -> str:
        """The name in step names: `name`, or `name@value` per dataset option (`cross_dataset@hvm-a`)."""
        options = options or {}
        return self.name + "".join(f"@{options[o]}" for o in self.dataset_options if options.get(o))

    def missing_options(self, options: dict[str, str] | None) -> list[str]:
        options = options or {}
        return [o for o in self.dataset_options if not options.get(o)]


_REGISTRY: dict[str, Analysis] = {}


def register(target):
    """`register(analysis)` adds an analysis to the registry; `register(subparsers)` adds the `analyze`
    command to the CLI. One name serves both because both contracts use it (statistics modules call
    `register(Analysis(...))`; precompute/cli.py calls each area's `register(sub)`)."""
    if isinstance(target, Analysis):
        return register_analysis(target)
    return register_cli(target)


def register_analysis(analysis: Analysis) -> Analysis:
    """Add an analysis to the registry (re-registering the same name replaces it, e.g. on reload)."""
    if analysis.default_models not in DEMO_SCOPES:
        raise ValueError(f"{analysis.name}: default_models must be one of {DEMO_SCOPES}")
    for table, _ in analysis.outputs:
        if table not in (*RESULT_TABLES, "model_comparisons"):
            raise ValueError(f"{analysis.name}: unknown output table {table!r}")
    _REGISTRY[analysis.name] = analysis
    return analysis


def analyses() -> dict[str, Analysis]:
    """Every registered analysis by name, in run order (importing ANALYSIS_MODULES first)."""
    for module in ANALYSIS_MODULES:
        importlib.import_module(module)
    order = {m: i for i, m in enumerate(ANALYSIS_MODULES)}
    items = sorted(_REGISTRY.values(), key=lambda a: order.get(a.run.__module__, len(order)))
    return {a.name: a for a in items}


def get_analyses(names: Sequence[str] | None) -> list[Analysis]:
    """The named analyses (all when `names` is empty), or a UserError listing the valid names."""
    known = analyses()
    if not names:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown analysis {', '.join(map(repr, unknown))}; valid names: {', '.join(known)}")
    wanted = set(names)
    return [a for a in known.values() if a.name in wanted]


# ---------------------------------------------------------------------------------------------- context
@dataclass
class AnalysisContext:
    """What an analysis sees: the step's connection, what to analyse, and loaders aligned by id.

    Loaders cache their result for the step; arrays over stimuli are in `stimuli.idx` order and arrays
    over sites in `sites.idx` order (the order of `sites()`).
    """

    con: object  # duckdb.DuckDBPyConnection inside the step's transaction
    store: Store | None
    dataset: str
    model: str | None
    protocol: str = "default"
    seed: int = DEFAULT_SEED
    models: tuple[str, ...] = ()
    analysis: str = ""
    options: dict[str, str] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ settings
    @property
    def n_resamples(self) -> int:
        """Bootstrap resamples: 1,000 by default, 10,000 with --protocol paper."""
        from precompute.statistics.resample import DEFAULT_RESAMPLES, PAPER_RESAMPLES

        return PAPER_RESAMPLES if self.protocol == "paper" else DEFAULT_RESAMPLES

    def rng(self, *keys: str) -> np.random.Generator:
        """A generator seeded by the run's seed, this analysis, the model and `keys` (order-independent)."""
        from precompute.statistics.resample import rng_for

        return rng_for(self.seed, self.analysis, self.dataset, self.model or "", *keys)

    def _model(self, model: str | None) -> str:
        model = model or self.model
        if model is None:
            raise ValueError("this context has no model: pass model=")
        return model

    def _cached(self, key: tuple, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _df(self, sql: str, params: list) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    # ------------------------------------------------------------------ dataset
    def sites(self) -> pd.DataFrame:
        """site_id, idx, region, reliability, animal, electrode_array, in sites.idx order."""
        return self._cached(("sites",), lambda: self._df(
            "SELECT site_id, idx, region, reliability, animal, electrode_array FROM sites WHERE dataset = ? "
            "ORDER BY idx", [self.dataset]))

    def site_clusters(self, index: np.ndarray | None = None):
        """resample.Clusters of the sites (all, or those at positions `index` of `sites()`): by animal and
        array where the dataset records both for every site, by animal where it records only that, else i.i.d."""
        from precompute.statistics.resample import Clusters

        sites = self.sites()
        if index is not None:
            sites = sites.iloc[np.asarray(index, dtype=np.int64)]
        animal, array = sites["animal"], sites["electrode_array"]
        if len(sites) and animal.notna().all() and array.notna().all():
            return Clusters.from_labels((animal.astype(str) + "/" + array.astype(str)).tolist(), "animal/array")
        if len(sites) and animal.notna().all():
            return Clusters.from_labels(animal.astype(str).tolist(), "animal")
        return Clusters.iid(len(sites))

    def stimulus_clusters(self):
        """resample.Clusters of the stimuli (idx order): by object where every stimulus names one, else i.i.d."""
        from precompute.statistics.resample import Clusters

        def make():
            objects = [o for (o,) in self.con.execute("SELECT object FROM stimuli WHERE dataset = ? ORDER BY idx",
                                                      [self.dataset]).fetchall()]
            if objects and all(o is not None for o in objects) and len(set(objects)) > 1:
                return Clusters.from_labels(objects, "object")
            return Clusters.iid(len(objects))

        return self._cached(("stimulus_clusters",), make)

    def folds(self) -> np.ndarray:
        """(stimuli,) cross-validation fold of every stimulus (idx order; stimulus_folds)."""
        from precompute.datasets.folds import ensure_folds

        return self._cached(("folds",), lambda: ensure_folds(self.con, self.dataset))

    def split_units(self, train_folds: int, model: str | None = None) -> list[tuple[int, int, int, int] | None]:
        """Each site's (sites() order) unit chosen on folds 0 .. train_folds-1 by the matching run
        (split_matches rank 1), None where it chose none; a UserError when the run stored no such set."""
        m = self._model(model)

        def make():
            df = self._df("SELECT site_id, layer_idx, channel, y, x FROM split_matches WHERE dataset = ? AND "
                          "model = ? AND train_folds = ? AND rank = 1", [self.dataset, m, int(train_folds)])
            if df.empty and len(self.sites()):
                raise UserError(f"{m} on {self.dataset} has no units chosen on training folds 0..{train_folds - 1}: "
                                f"it was matched before held-out selection was part of matching; rerun "
                                f"`python -m precompute run --dataset {self.dataset} --model {m} --force`")
            by_site = {r.site_id: (int(r.layer_idx), int(r.channel), int(r.y), int(r.x))
                       for r in df.itertuples(index=False)}
            return [by_site.get(s) for s in self.sites()["site_id"]]

        return self._cached(("split_units", m, int(train_folds)), make)

    def unit_values(self, units: Sequence[tuple[int, int, int, int] | None], model: str | None = None) -> np.ndarray:
        """(len(units), stimuli) float64 activations of the given units; NaN rows for None or unstored units."""
        table = self.activations([u for u in units if u is not None], model=model)
        out = np.full((len(units), len(self.stimulus_ids())), np.nan)
        for i, u in enumerate(units):
            if u is not None and tuple(u) in table:
                out[i] = table[tuple(u)]
        return out

    def stimulus_ids(self) -> list[str]:
        """Stimulus ids in stimuli.idx order (the order of every stored array)."""
        return self._cached(("stimuli",), lambda: [str(s) for (s,) in self.con.execute(
            "SELECT stimulus_id FROM stimuli WHERE dataset = ? ORDER BY idx", [self.dataset]).fetchall()])

    def responses(self) -> np.ndarray:
        """Trial-averaged responses (sites x stimuli) float64, aligned by id; NaN where missing."""
        def make() -> np.ndarray:
            n_rows = self.con.execute("SELECT count(*) FROM responses WHERE dataset = ?", [self.dataset]).fetchone()[0]
            # the join aligns by id (sites.idx, stimuli.idx); a row naming an unknown id drops out of it
            got = self.con.execute(
                "SELECT s.idx AS site_idx, t.idx AS stim_idx, r.response FROM responses r "
                "JOIN sites s ON s.dataset = r.dataset AND s.site_id = r.site_id "
                "JOIN stimuli t ON t.dataset = r.dataset AND t.stimulus_id = r.stimulus_id "
                "WHERE r.dataset = ?", [self.dataset]).fetchnumpy()
            if len(got["response"]) != n_rows:
                raise UserError(f"dataset {self.dataset!r}: responses name unknown sites or stimuli; re-import it")
            out = np.full((len(self.sites()), len(self.stimulus_ids())), np.nan)
            out[np.asarray(got["site_idx"], int), np.asarray(got["stim_idx"], int)] = np.asarray(got["response"],
                                                                                                  np.float64)
            return out

        return self._cached(("responses",), make)

    def trials(self) -> np.ndarray | None:
        """Single trials (sites x stimuli x repetitions) float64, NaN where missing; None without trials."""
        def make() -> np.ndarray | None:
            df = self._df("SELECT site_id, stimulus_id, repetition, response FROM trials WHERE dataset = ?",
                          [self.dataset])
            if df.empty:
                return None
            site_pos = {s: i for i, s in enumerate(self.sites()["site_id"])}
            stim_pos = {s: i for i, s in enumerate(self.stimulus_ids())}
            out = np.full((len(site_pos), len(stim_pos), int(df["repetition"].max()) + 1), np.nan)
            out[df["site_id"].map(site_pos).to_numpy(int), df["stimulus_id"].map(stim_pos).to_numpy(int),
                df["repetition"].to_numpy(int)] = df["response"].to_numpy(np.float64)
            return out

        return self._cached(("trials",), make)

    # ------------------------------------------------------------------ match tables
    def layers(self, model: str | None = None) -> pd.DataFrame:
        """layer_idx, layer, depth, channels, height, width of the model, in layer order."""
        m = self._model(model)
        return self._cached(("layers", m), lambda: self._df(
            "SELECT layer_idx, layer, depth, channels, height, width FROM layers WHERE model = ? ORDER BY layer_idx",
            [m]))

    def matches(self, rank: int | None = None, model: str | None = None) -> pd.DataFrame:
        """Whole-model matches (site_id, rank, layer_idx, channel, y, x, r), all ranks or one."""
        m = self._model(model)
        sql = "SELECT site_id, rank, layer_idx, channel, y, x, r FROM matches WHERE dataset = ? AND model = ?"
        params: list = [self.dataset, m]
        if rank is not None:
            sql += " AND rank = ?"
            params.append(int(rank))
        return self._cached(("matches", m, rank), lambda: self._df(sql + " ORDER BY site_id, rank", params))

    def best_matches(self, model: str | None = None) -> pd.DataFrame:
        """Each site's rank-1 unit with its region: site_id, idx, region, layer_idx, channel, y, x, r.

        Every site of the dataset is a row (in sites.idx order); a site without a match has NaN r."""
        best = self.matches(rank=1, model=model).drop(columns="rank")
        return self.sites()[["site_id", "idx", "region"]].merge(best, on="site_id", how="left")

    def layer_matches(self, rank: int | None = 1, model: str | None = None) -> pd.DataFrame:
        """Within-layer matches (site_id, layer_idx, rank, channel, y, x, r); rank 1 by default."""
        m = self._model(model)
        sql = ("SELECT site_id, layer_idx, rank, channel, y, x, r FROM layer_matches "
               "WHERE dataset = ? AND model = ?")
        params: list = [self.dataset, m]
        if rank is not None:
            sql += " AND rank = ?"
            params.append(int(rank))
        return self._cached(("layer_matches", m, rank),
                            lambda: self._df(sql + " ORDER BY site_id, layer_idx, rank", params))

    def featuremap_matches(self, model: str | None = None) -> pd.DataFrame:
        """Best unit of every feature map (site_id, layer_idx, channel, y, x, r)."""
        m = self._model(model)
        return self._cached(("featuremap_matches", m), lambda: self._df(
            "SELECT site_id, layer_idx, channel, y, x, r FROM featuremap_matches WHERE dataset = ? AND model = ? "
            "ORDER BY site_id, layer_idx, channel", [self.dataset, m]))

    def activations(self, units: Sequence[tuple[int, int, int, int]] | None = None,
                    model: str | None = None) -> dict[tuple[int, int, int, int], np.ndarray]:
        """Gathered activations: (layer_idx, channel, y, x) -> float32 array over stimuli (idx order).

        All gathered units when `units` is None; otherwise those of `units` that are stored (use
        `request_activations` first for units the gather pass did not keep). Loaded units are cached."""
        m = self._model(model)
        cache: dict = self._cache.setdefault(("activations", m), {})
        if units is None:
            if not self._cache.get(("activations_all", m)):
                cache.update(self._load_activations(m, None))
                self._cache[("activations_all", m)] = True
            return dict(cache)
        keys = [tuple(int(v) for v in u) for u in units]
        todo = [k for k in dict.fromkeys(keys) if k not in cache]
        if todo and not self._cache.get(("activations_all", m)):
            cache.update(self._load_activations(m, todo))
        return {k: cache[k] for k in keys if k in cache}

    def activation_matrix(self, units: Sequence[tuple[int, int, int, int]],
                          model: str | None = None) -> np.ndarray:
        """(len(units), stimuli) float32 of the given units, in the given order; KeyError names a missing one."""
        table = self.activations(units, model=model)
        out = np.empty((len(units), len(self.stimulus_ids())), np.float32)
        for i, u in enumerate(units):
            key = tuple(int(v) for v in u)
            if key not in table:
                raise KeyError(f"unit {key} of {self._model(model)} is not in unit_activations "
                               "(request it with ctx.request_activations)")
            out[i] = table[key]
        return out

    def _load_activations(self, model: str, units: list[tuple[int, int, int, int]] | None
                          ) -> dict[tuple[int, int, int, int], np.ndarray]:
        n = len(self.stimulus_ids())
        sql = ('SELECT a.layer_idx, a.channel, a.y, a.x, a."values" FROM unit_activations a{join} '
               "WHERE a.dataset = ? AND a.model = ?")
        if units is None:
            tbl = self.con.sql(sql.format(join=""), params=[self.dataset, model]).to_arrow_table()
        else:
            wanted = pd.DataFrame(units, columns=["layer_idx", "channel", "y", "x"]).astype("int32")
            self.con.register("_analyze_wanted_units", wanted)
            try:
                tbl = self.con.sql(sql.format(join=" JOIN _analyze_wanted_units w USING (layer_idx, channel, y, x)"),
                                   params=[self.dataset, model]).to_arrow_table()
            finally:
                self.con.unregister("_analyze_wanted_units")
        if tbl.num_rows == 0:
            return {}
        values = tbl.column("values").combine_chunks()
        flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if flat.size != tbl.num_rows * n:
            raise UserError(f"unit_activations of {model} on {self.dataset} do not have {n} values per unit; "
                            f"rerun `python -m precompute run --dataset {self.dataset} --model {model} --force`")
        matrix = flat.reshape(tbl.num_rows, n)
        keys = zip(*(tbl.column(c).to_numpy() for c in ("layer_idx", "channel", "y", "x")), strict=True)
        return {tuple(int(v) for v in k): matrix[i] for i, k in enumerate(keys)}

    def request_activations(self, units: Sequence[tuple[int, int, int, int]], model: str | None = None,
                            source=None) -> int:
        """Gather activations of more units (runs the model; reason 'requested'); returns how many were added.

        `source`: an open ActivationSource of the model to use (default: open the stored model)."""
        from precompute.match.gather import gather_more

        m = self._model(model)
        added = gather_more(self.con, self.dataset, m, list(units), self.store, source=source)
        self._cache.pop(("activations", m), None)
        self._cache.pop(("activations_all", m), None)
        return added

    # ------------------------------------------------------------------ writing
    def write_scores(self, rows: pd.DataFrame) -> None:
        """Replace `scores` rows (region, metric, value, ci_low, ci_high[, ci_scheme]) of this (dataset, model,
        metric)."""
        self._write("scores", rows, ("region", "metric", "value", "ci_low", "ci_high"))

    def write_layer_scores(self, rows: pd.DataFrame) -> None:
        """Replace `layer_scores` rows (region, layer_idx, metric, value, ci_low, ci_high[, ci_scheme])."""
        self._write("layer_scores", rows, ("region", "layer_idx", "metric", "value", "ci_low", "ci_high"))

    def write_site_scores(self, rows: pd.DataFrame) -> None:
        """Replace `site_scores` rows (site_id, metric, value)."""
        self._write("site_scores", rows, ("site_id", "metric", "value"))

    def write_selection_curve(self, rows: pd.DataFrame) -> None:
        """Replace `selection_curve` rows (region, fraction, value, ci_low, ci_high[, ci_scheme]) of this
        (dataset, model)."""
        self._write("selection_curve", rows, ("region", "fraction", "value", "ci_low", "ci_high"))

    def write_model_comparisons(self, rows: pd.DataFrame) -> None:
        """Replace `model_comparisons` rows (region, model_a, model_b, metric, difference, p_value[, ci_low,
        ci_high, p_holm, test, ci_scheme])."""
        cols = ("region", "model_a", "model_b", "metric", "difference", "p_value")
        df = _columns(rows, cols, "model_comparisons", ("ci_low", "ci_high", "p_holm", "test", "ci_scheme"))
        for (a, b, metric), _ in df.groupby(["model_a", "model_b", "metric"]):
            self.con.execute("DELETE FROM model_comparisons WHERE dataset = ? AND metric = ? AND "
                             "((model_a = ? AND model_b = ?) OR (model_a = ? AND model_b = ?))",
                             [self.dataset, metric, a, b, b, a])
        df.insert(0, "dataset", self.dataset)
        self._insert("model_comparisons", df)

    def _write(self, table: str, rows: pd.DataFrame, cols: tuple[str, ...]) -> None:
        model = self._model(None)
        df = _columns(rows, cols, table, ("ci_scheme",) if "ci_low" in cols else ())
        if table != "selection_curve":
            for metric in df["metric"].unique():
                self.con.execute(f'DELETE FROM "{table}" WHERE dataset = ? AND model = ? AND metric = ?',
                                 [self.dataset, model, str(metric)])
        else:
            self.con.execute('DELETE FROM selection_curve WHERE dataset = ? AND model = ?', [self.dataset, model])
        df.insert(0, "model", model)
        df.insert(0, "dataset", self.dataset)
        self._insert(table, df)

    def _insert(self, table: str, df: pd.DataFrame) -> None:
        if df.empty:
            return
        name = f"_analyze_{table}"
        self.con.register(name, df)
        try:
            cols = ", ".join(f'"{c}"' for c in df.columns)
            self.con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM "{name}"')
        finally:
            self.con.unregister(name)
        failpoint("analyze.rows_written")

    def clear_outputs(self, outputs: Sequence[tuple[str, str]]) -> None:
        """Delete the (table, metric) rows of this (dataset, model): a rerun replaces them whole.

        A metric naming options (`cross_dataset@{select_on}`) is formatted with this run's options."""
        for table, metric in outputs:
            if "{" in metric:
                metric = metric.format(**self.options)
            if table == "model_comparisons":
                if self.models:
                    marks = ", ".join("?" for _ in self.models)
                    self.con.execute(
                        f"DELETE FROM model_comparisons WHERE dataset = ? AND metric = ? AND model_a IN ({marks}) "
                        f"AND model_b IN ({marks})", [self.dataset, metric, *self.models, *self.models])
            elif table == "selection_curve":
                self.con.execute("DELETE FROM selection_curve WHERE dataset = ? AND model = ?",
                                 [self.dataset, self._model(None)])
            elif table in RESULT_TABLES:
                self.con.execute(f'DELETE FROM "{table}" WHERE dataset = ? AND model = ? AND metric = ?',
                                 [self.dataset, self._model(None), metric])


def _columns(rows: pd.DataFrame, cols: tuple[str, ...], table: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    missing = [c for c in cols if c not in rows.columns]
    if missing:
        raise ValueError(f"rows for {table} lack columns {missing}")
    df = rows.loc[:, list(cols) + [c for c in optional if c in rows.columns]].copy()
    for c in ("value", "ci_low", "ci_high", "difference", "p_value", "p_holm", "fraction"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


# ---------------------------------------------------------------------------------------------- running
def step_name(name: str, dataset: str, model: str | None = None) -> str:
    return f"analyze:{name}:{dataset}" + (f":{model}" if model is not None else "")


def matched_models(con, dataset: str) -> list[str]:
    """Models with match tables on the dataset, by name."""
    return [m for (m,) in con.execute("SELECT model FROM match_runs WHERE dataset = ? ORDER BY model",
                                      [dataset]).fetchall()]


def check_inputs(con, dataset: str, models: Sequence[str], need_matching: bool) -> None:
    """UserError when the dataset is unknown or a model has not been matched on it."""
    if not con.execute("SELECT count(*) FROM datasets WHERE dataset = ?", [dataset]).fetchone()[0]:
        known = [d for (d,) in con.execute("SELECT dataset FROM datasets ORDER BY dataset").fetchall()]
        raise UserError(f"dataset {dataset!r} does not exist (known: {', '.join(known) or 'none'}); "
                        "see `python -m precompute datasets list`")
    if need_matching:
        done = set(matched_models(con, dataset))
        for model in models:
            if model not in done and not con.execute("SELECT count(*) FROM models WHERE model = ?",
                                                     [model]).fetchone()[0]:
                known = [m for (m,) in con.execute("SELECT model FROM models ORDER BY model").fetchall()]
                raise UserError(f"model {model!r} does not exist (known: {', '.join(known) or 'none'}); add it with "
                                "`python -m precompute models add` (see `python -m precompute models list`)")
            if model not in done:
                raise UserError(f"model {model!r} is not matched on {dataset!r} yet; run "
                                f"`python -m precompute run --dataset {dataset} --model {model}` first")


def inputs_fingerprint(con, dataset: str, models: Sequence[str]) -> list:
    """What a step's results derive from: the dataset's and each model's match run's creation times.

    A step whose recorded fingerprint differs (the dataset was re-imported, a model re-matched, or a
    cross-model step's set of matched models changed) is redone even though it is recorded as done."""
    ds = con.execute("SELECT created_at FROM datasets WHERE dataset = ?", [dataset]).fetchone()
    runs = dict(con.execute("SELECT model, created_at FROM match_runs WHERE dataset = ?", [dataset]).fetchall())
    return [str(ds[0] if ds else None), *([m, str(runs.get(m))] for m in models)]


def run_analysis(store: Store, analysis: Analysis, dataset: str, model: str | None = None, *,
                 protocol: str = "default", seed: int = DEFAULT_SEED, force: bool = False,
                 options: dict[str, str] | None = None) -> bool:
    """Run one analysis for one (dataset, model) (or, cross-model, for the dataset) in its own step.

    `options`: values of the analysis's dataset options (e.g. {"select_on": "hvm-a"} for cross_dataset).
    Returns False when skipped: already done on the same inputs (see `inputs_fingerprint`) and not
    `force`."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    options = {k: str(v) for k, v in (options or {}).items() if v}
    missing = analysis.missing_options(options)
    if missing:
        raise UserError(f"analysis {analysis.name!r} needs {', '.join('--' + m.replace('_', '-') for m in missing)} "
                        "(the dataset to read besides --dataset)")
    target = None if analysis.cross_model else model
    name = step_name(analysis.label(options), dataset, target)
    with store.locked():
        with store.connect() as con:
            check_inputs(con, dataset, [] if target is None else [target], analysis.requires_matching)
            other = [options[o] for o in analysis.dataset_options]
            check_other_datasets(con, dataset, other, [] if target is None else [target])
            models = tuple(matched_models(con, dataset)) if analysis.cross_model else ()
            fingerprint = inputs_fingerprint(con, dataset, models if analysis.cross_model else [target])
            for d in other:
                fingerprint += inputs_fingerprint(con, d, [] if target is None else [target])
            unchanged = name in steps_done(con) and _recorded_inputs(con).get(name) == fingerprint
        if unchanged and not force:
            log.info("%s is already done; skipping (use --force to redo it)", name)
            return False
        with store.step(name) as con:
            ctx = AnalysisContext(con=con, store=store, dataset=dataset, model=target, protocol=protocol, seed=seed,
                                  models=models, analysis=analysis.name, options=options)
            ctx.clear_outputs(analysis.outputs)
            failpoint("analyze.outputs_cleared")
            analysis.run(ctx)
            store.record(con, "seeds", name, seed)
            store.record(con, ANALYSIS_INPUTS_KEY, name, fingerprint)
    return True


def check_other_datasets(con, dataset: str, others: Sequence[str], models: Sequence[str]) -> None:
    """UserError when a dataset an analysis also reads (a dataset option) is the same dataset, unknown, or
    not matched with the model."""
    for other in others:
        if other == dataset:
            raise UserError(f"--select-on names the dataset itself ({dataset!r}); name another dataset that "
                            "shares site ids with it (for held-out r within one dataset use heldout_split_half)")
        check_inputs(con, other, models, True)


#: build_info key: JSON object step name -> the inputs fingerprint it ran on
ANALYSIS_INPUTS_KEY = "analysis_inputs"


def _recorded_inputs(con) -> dict:
    row = con.execute("SELECT value FROM build_info WHERE key = ?", [ANALYSIS_INPUTS_KEY]).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def run_analyses(store: Store, dataset: str, models: Sequence[str], names: Sequence[str] | None = None, *,
                 protocol: str = "default", seed: int = DEFAULT_SEED, force: bool = False,
                 progress: bool = False, options: dict[str, str] | None = None) -> list[tuple[str, bool]]:
    """Run the named analyses (all by default) for each model, then the cross-model ones once.

    An analysis with dataset options (cross_dataset's `select_on`) runs only when they are given; named
    explicitly without them it is a UserError, in a run of all analyses it is skipped (logged).
    Inputs are checked before anything runs. Returns (step name, ran) per step."""
    options = {k: str(v) for k, v in (options or {}).items() if v}
    chosen = []
    for a in get_analyses(names):
        missing = a.missing_options(options)
        if missing and names:
            raise UserError(f"analysis {a.name!r} needs "
                            f"{', '.join('--' + m.replace('_', '-') for m in missing)} (the dataset to read besides "
                            f"--dataset {dataset})")
        if missing:
            log.info("skipping %s: it needs %s", a.name, ", ".join("--" + m.replace("_", "-") for m in missing))
            continue
        chosen.append(a)
    models = list(dict.fromkeys(models))
    with store.connect() as con:
        check_inputs(con, dataset, models, any(a.requires_matching for a in chosen))
        for a in chosen:
            check_other_datasets(con, dataset, [options[o] for o in a.dataset_options], models)
    plan = [(a, m) for m in models for a in chosen if not a.cross_model]
    plan += [(a, None) for a in chosen if a.cross_model]
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=len(plan), desc="analyze", unit="step", file=sys.stderr)
    out = []
    try:
        for analysis, model in plan:
            name = step_name(analysis.label(options), dataset, model)
            if bar is not None:
                bar.set_postfix_str(name, refresh=True)
            used = {o: options[o] for o in analysis.dataset_options}
            out.append((name, run_analysis(store, analysis, dataset, model, protocol=protocol, seed=seed,
                                           force=force, options=used)))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


# ---------------------------------------------------------------------------------------------- CLI
ANALYZE_HELP = """Compute statistics and analyses for a dataset and one or more matched models, into the
scores, layer_scores, site_scores, selection_curve and model_comparisons tables (docs/metrics.md).
`--select-on A` adds cross_dataset (each site's best unit on dataset A, scored on --dataset); without it
cross_dataset is skipped.

Each analysis runs for each model in its own step (one transaction, published when done); a step
already done on the same inputs is skipped unless --force (use it to recompute with another --seed or
--protocol); a step is redone by itself when its dataset was re-imported or its model re-matched. A
rerun replaces only that (dataset, model)'s rows. Cross-model comparisons run once per dataset over
every model matched on it (and again when that set changes).

Analyses:
"""


def register_cli(sub) -> None:
    """Add `analyze` to the `python -m precompute` parser."""
    listing = "\n".join(f"  {a.name:<20} {a.description}" for a in analyses().values())
    p = sub.add_parser("analyze", help="statistics and analyses over matched models (scores, intervals, ...)",
                       description=ANALYZE_HELP + listing, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="dataset name (see `datasets list`)")
    p.add_argument("--model", required=True, action="append", dest="models", metavar="MODEL",
                   help="a model matched on the dataset; repeat for several")
    p.add_argument("--only", action="append", dest="only", metavar="NAME", default=None,
                   help="run only this analysis (repeatable; default: all)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="default",
                   help="default, or paper (full protocols: more resamples, every layer)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of every resampling (default 0)")
    p.add_argument("--force", action="store_true", help="redo analyses that are already done")
    p.add_argument("--select-on", dest="select_on", metavar="DATASET", default=None,
                   help="cross_dataset: the dataset whose best units are evaluated on --dataset (the two must "
                        "share site ids; the model must be matched on it)")
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args: argparse.Namespace, store: Store) -> int:
    results = run_analyses(store, args.dataset, args.models, args.only, protocol=args.protocol, seed=args.seed,
                           force=args.force, progress=True, options={"select_on": getattr(args, "select_on", None)})
    for name, ran in results:
        print(f"{name}: {'done' if ran else 'already done (use --force to redo)'}")
    return 0


# ---------------------------------------------------------------------------------------------- demo
PRIMARY_DEMO_MODELS = ("efficientnet-lite0", "pixels", "random-efficientnet-lite0", "untrained-efficientnet-lite0")
OTHER_DEMO_MODELS = ("efficientnet-lite1", "efficientnet-lite2")


def demo_steps(variant: str) -> list:
    """Analysis steps of the demo (DESIGN.md scope): every analysis on Lite0 and its controls, the
    `default_models="all"` ones on Lite1/Lite2, then the cross-model ones; quick: Lite0 only, the analyses
    that take seconds (a first look in a few minutes; `analyze` adds the rest)."""
    from precompute.demo import SLOW_ANALYSES, DemoStep, demo_dataset

    dataset = demo_dataset(variant)
    # analyses that read a second dataset (cross_dataset) need a pair the demo does not have
    registry = [a for a in analyses().values() if not a.dataset_options]
    plan: list[tuple[Analysis, str | None]] = []
    if variant == "quick":  # a first look in a few minutes: the analyses that take seconds
        plan = [(a, "efficientnet-lite0") for a in registry
                if not a.cross_model and a.default_models != "main" and a.name not in SLOW_ANALYSES]
    else:
        for model in (*PRIMARY_DEMO_MODELS, *OTHER_DEMO_MODELS):
            full = variant == "full"
            primary = model in PRIMARY_DEMO_MODELS or full
            main = model == PRIMARY_DEMO_MODELS[0] or full
            plan += [(a, model) for a in registry
                     if not a.cross_model and (a.default_models == "all"
                                               or (a.default_models == "primary" and primary)
                                               or (a.default_models == "main" and main))]
        plan += [(a, None) for a in registry if a.cross_model]
    return [DemoStep(step_name(a.name, dataset, m), _demo_runner(a, dataset, m),
                     f"{a.name} on {dataset}" + (f" x {m}" if m else " (all matched models)"))
            for a, m in plan]


def _demo_runner(analysis: Analysis, dataset: str, model: str | None):
    def run(store: Store) -> None:
        run_analysis(store, analysis, dataset, model)

    return run
