"""`AnalysisContext`: what an analysis sees, and its only way to the database.

The step's connection, what to analyse (dataset, model or models, protocol, seed, options), loaders for
the dataset, the models and the match tables aligned by id (cached for the step: `cached`), the model's
activation source and image feed for analyses that run it, writers for the result tables, and readers
and writers for the tables an analysis owns (`replace_rows`, `append_rows`, `delete_rows`, `read_rows`).
Every SQL statement of precompute/analyses and precompute/statistics is in this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from precompute.analyses.context_tables import SCORE_COLUMNS, ContextTables
from precompute.analyses.registry import DEFAULT_SEED
from precompute.core.catalog import inputs_fingerprint, matched_models
from precompute.core.errors import UserError
from precompute.core.feeds import PngFeed
from precompute.core.store import Store
from precompute.datasets.folds import ensure_folds
from precompute.match.gather import gather_more
from precompute.match.inputs import MatchInputs, load_inputs
from precompute.models import registry
from precompute.models.sources import control_seed, open_source
from precompute.statistics.resample import DEFAULT_RESAMPLES, PAPER_RESAMPLES, Clusters, rng_for

__all__ = ["SCORE_COLUMNS", "AnalysisContext"]


@dataclass
class AnalysisContext(ContextTables):
    """What an analysis sees: the step's connection, what to analyse, and loaders aligned by id.

    Loaders cache their result for the step; arrays over stimuli are in `stimuli.idx` order and arrays
    over sites in `sites.idx` order (the order of `sites()`). The writers are ContextTables'
    (precompute/analyses/context_tables.py).
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
        return PAPER_RESAMPLES if self.protocol == "paper" else DEFAULT_RESAMPLES

    def rng(self, *keys: str) -> np.random.Generator:
        """A generator seeded by the run's seed, this analysis, the model and `keys` (order-independent)."""
        return rng_for(self.seed, self.analysis, self.dataset, self.model or "", *keys)

    def _model(self, model: str | None) -> str:
        model = model or self.model
        if model is None:
            raise ValueError("this context has no model: pass model=")
        return model

    def cached(self, key: tuple, make: Callable[[], object]):
        """The value stored under `key` for this step, made by `make()` the first time (None included)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _df(self, sql: str, params: list) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    # ------------------------------------------------------------------ dataset
    def sites(self) -> pd.DataFrame:
        """site_id, idx, region, reliability, animal, electrode_array, in sites.idx order."""
        return self.cached(
            ("sites",),
            lambda: self._df(
                "SELECT site_id, idx, region, reliability, animal, electrode_array FROM sites WHERE dataset = ? "
                "ORDER BY idx",
                [self.dataset],
            ),
        )

    def site_clusters(self, index: np.ndarray | None = None):
        """resample.Clusters of the sites (all, or those at positions `index` of `sites()`): by animal and
        array where the dataset records both for every site, by animal where it records only that, else i.i.d."""
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

        def make():
            objects = [
                o
                for (o,) in self.con.execute(
                    "SELECT object FROM stimuli WHERE dataset = ? ORDER BY idx", [self.dataset]
                ).fetchall()
            ]
            if objects and all(o is not None for o in objects) and len(set(objects)) > 1:
                return Clusters.from_labels(objects, "object")
            return Clusters.iid(len(objects))

        return self.cached(("stimulus_clusters",), make)

    def folds(self) -> np.ndarray:
        """(stimuli,) cross-validation fold of every stimulus (idx order; stimulus_folds)."""
        return self.cached(("folds",), lambda: ensure_folds(self.con, self.dataset))

    def split_units(self, train_folds: int, model: str | None = None) -> list[tuple[int, int, int, int] | None]:
        """Each site's (sites() order) unit chosen on folds 0 .. train_folds-1 by the matching run
        (split_matches rank 1), None where it chose none; a UserError when the run stored no such set."""
        m = self._model(model)

        def make():
            df = self._df(
                "SELECT site_id, layer_idx, channel, y, x FROM split_matches WHERE dataset = ? AND "
                "model = ? AND train_folds = ? AND rank = 1",
                [self.dataset, m, int(train_folds)],
            )
            if df.empty and len(self.sites()):
                raise UserError(
                    f"{m} on {self.dataset} has no units chosen on training folds 0..{train_folds - 1}: "
                    f"it was matched before held-out selection was part of matching; rerun "
                    f"`python -m precompute run --dataset {self.dataset} --model {m} --force`"
                )
            by_site = {
                r.site_id: (int(r.layer_idx), int(r.channel), int(r.y), int(r.x)) for r in df.itertuples(index=False)
            }
            return [by_site.get(s) for s in self.sites()["site_id"]]

        return self.cached(("split_units", m, int(train_folds)), make)

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
        return self.cached(
            ("stimuli",),
            lambda: [
                str(s)
                for (s,) in self.con.execute(
                    "SELECT stimulus_id FROM stimuli WHERE dataset = ? ORDER BY idx", [self.dataset]
                ).fetchall()
            ],
        )

    def responses(self) -> np.ndarray:
        """Trial-averaged responses (sites x stimuli) float64, aligned by id; NaN where missing."""

        def make() -> np.ndarray:
            n_rows = self.con.execute("SELECT count(*) FROM responses WHERE dataset = ?", [self.dataset]).fetchone()[0]
            # the join aligns by id (sites.idx, stimuli.idx); a row naming an unknown id drops out of it
            got = self.con.execute(
                "SELECT s.idx AS site_idx, t.idx AS stim_idx, r.response FROM responses r "
                "JOIN sites s ON s.dataset = r.dataset AND s.site_id = r.site_id "
                "JOIN stimuli t ON t.dataset = r.dataset AND t.stimulus_id = r.stimulus_id "
                "WHERE r.dataset = ?",
                [self.dataset],
            ).fetchnumpy()
            if len(got["response"]) != n_rows:
                raise UserError(f"dataset {self.dataset!r}: responses name unknown sites or stimuli; re-import it")
            out = np.full((len(self.sites()), len(self.stimulus_ids())), np.nan)
            out[np.asarray(got["site_idx"], int), np.asarray(got["stim_idx"], int)] = np.asarray(
                got["response"], np.float64
            )
            return out

        return self.cached(("responses",), make)

    def trials(self) -> np.ndarray | None:
        """Single trials (sites x stimuli x repetitions) float64, NaN where missing; None without trials."""

        def make() -> np.ndarray | None:
            df = self._df(
                "SELECT site_id, stimulus_id, repetition, response FROM trials WHERE dataset = ?", [self.dataset]
            )
            if df.empty:
                return None
            site_pos = {s: i for i, s in enumerate(self.sites()["site_id"])}
            stim_pos = {s: i for i, s in enumerate(self.stimulus_ids())}
            out = np.full((len(site_pos), len(stim_pos), int(df["repetition"].max()) + 1), np.nan)
            out[
                df["site_id"].map(site_pos).to_numpy(int),
                df["stimulus_id"].map(stim_pos).to_numpy(int),
                df["repetition"].to_numpy(int),
            ] = df["response"].to_numpy(np.float64)
            return out

        return self.cached(("trials",), make)

    def categories(self) -> list[str | None]:
        """Each stimulus's category (None where it has none), in stimuli.idx order."""
        return self.cached(
            ("categories",),
            lambda: [
                c
                for (c,) in self.con.execute(
                    "SELECT category FROM stimuli WHERE dataset = ? ORDER BY idx", [self.dataset]
                ).fetchall()
            ],
        )

    def image_geometry(self) -> tuple[int, float]:
        """(image side in pixels, degrees the image spans) of the dataset's stimuli (256 px and 8 degrees when
        the database does not say)."""

        def make() -> tuple[int, float]:
            px = self.con.execute(
                "SELECT max(width), max(height) FROM stimuli WHERE dataset = ?", [self.dataset]
            ).fetchone()
            deg = self.con.execute("SELECT visual_degrees FROM datasets WHERE dataset = ?", [self.dataset]).fetchone()
            side = int(max(v for v in px if v is not None)) if px and any(v is not None for v in px) else 256
            return side, float(deg[0]) if deg and deg[0] else 8.0

        return self.cached(("image_geometry",), make)

    def site_rf_centres(self) -> dict[str, tuple[float, float]]:
        """site_id -> the site's mapped receptive-field centre (degrees), for the sites that have one."""
        rows = self.con.execute(
            "SELECT site_id, rf_x_deg, rf_y_deg FROM sites WHERE dataset = ? AND rf_x_deg IS NOT NULL "
            "AND rf_y_deg IS NOT NULL",
            [self.dataset],
        ).fetchall()
        return {s: (float(x), float(y)) for s, x, y in rows}

    def dataset_inputs(self) -> MatchInputs:
        """The dataset as the engine reads it: stimulus ids and PNGs (idx order), site ids, responses (not cached)."""
        return load_inputs(self.con, self.dataset)

    def image_feed(self) -> PngFeed:
        """An ImageFeed of the dataset's stimuli in idx order (decoded on demand)."""
        inputs = self.dataset_inputs()
        return PngFeed(inputs.stimulus_ids, inputs.pngs)

    def inputs_fingerprint(self) -> list:
        """What this (dataset, model)'s results derive from (the dataset's and the match run's creation times)."""
        return inputs_fingerprint(self.con, self.dataset, [self._model(None)])

    def for_dataset(self, dataset: str) -> AnalysisContext:
        """A context on another dataset with this one's model, protocol, seed and analysis (and its own cache)."""
        return AnalysisContext(
            con=self.con,
            store=self.store,
            dataset=dataset,
            model=self.model,
            protocol=self.protocol,
            seed=self.seed,
            analysis=self.analysis,
        )

    # ------------------------------------------------------------------ models
    def model_row(self, model: str | None = None) -> dict:
        """The `models` row of the model (kind, family, reference_model, input_size, source, onnx_path, ...)."""
        m = self._model(model)
        return self.cached(("model_row", m), lambda: registry.read_model(self.con, m))

    def model_kind(self, model: str | None = None) -> tuple[str, str | None]:
        """(kind, family) of the model, e.g. ('control', 'random') or ('untrained', 'efficientnet_lite')."""
        row = self.model_row(model)
        return row["kind"], row["family"]

    def model_seed(self, model: str | None = None) -> int:
        """The seed the model was built with (build_info seeds, `model:<name>`; 0 when none was recorded)."""
        return control_seed(self.con, self._model(model))

    def is_matched(self, model: str | None = None) -> bool:
        """Whether the model has match tables on this dataset."""
        return self._model(model) in matched_models(self.con, self.dataset)

    def matched_controls(self, family: str) -> list[str]:
        """The controls of `family` matched on this dataset: the one named `family` first, then by name."""
        rows = self.con.execute(
            "SELECT m.model FROM models m JOIN match_runs r ON r.model = m.model AND r.dataset = ? "
            "WHERE m.kind = 'control' AND m.family = ? ORDER BY m.model <> ?, m.model",
            [self.dataset, family, family],
        ).fetchall()
        return [m for (m,) in rows]

    def activation_source(self, model: str | None = None):
        """The model's ActivationSource (its ONNX file, or a control), opened now: the caller closes it."""
        return open_source(self.con, self._model(model), self.store)

    # ------------------------------------------------------------------ match tables
    def layers(self, model: str | None = None) -> pd.DataFrame:
        """layer_idx, layer, depth, channels, height, width of the model, in layer order."""
        m = self._model(model)
        return self.cached(
            ("layers", m),
            lambda: self._df(
                "SELECT layer_idx, layer, depth, channels, height, width FROM layers WHERE model = ? "
                "ORDER BY layer_idx",
                [m],
            ),
        )

    def matches(self, rank: int | None = None, model: str | None = None) -> pd.DataFrame:
        """Whole-model matches (site_id, rank, layer_idx, channel, y, x, r), all ranks or one."""
        m = self._model(model)
        sql = "SELECT site_id, rank, layer_idx, channel, y, x, r FROM matches WHERE dataset = ? AND model = ?"
        params: list = [self.dataset, m]
        if rank is not None:
            sql += " AND rank = ?"
            params.append(int(rank))
        return self.cached(("matches", m, rank), lambda: self._df(sql + " ORDER BY site_id, rank", params))

    def best_matches(self, model: str | None = None) -> pd.DataFrame:
        """Each site's rank-1 unit with its region: site_id, idx, region, layer_idx, channel, y, x, r.

        Every site of the dataset is a row (in sites.idx order); a site without a match has NaN r."""
        best = self.matches(rank=1, model=model).drop(columns="rank")
        return self.sites()[["site_id", "idx", "region"]].merge(best, on="site_id", how="left")

    def layer_matches(self, rank: int | None = 1, model: str | None = None) -> pd.DataFrame:
        """Within-layer matches (site_id, layer_idx, rank, channel, y, x, r); rank 1 by default."""
        m = self._model(model)
        sql = "SELECT site_id, layer_idx, rank, channel, y, x, r FROM layer_matches WHERE dataset = ? AND model = ?"
        params: list = [self.dataset, m]
        if rank is not None:
            sql += " AND rank = ?"
            params.append(int(rank))
        return self.cached(
            ("layer_matches", m, rank), lambda: self._df(sql + " ORDER BY site_id, layer_idx, rank", params)
        )

    def featuremap_matches(self, model: str | None = None) -> pd.DataFrame:
        """Best unit of every feature map (site_id, layer_idx, channel, y, x, r)."""
        m = self._model(model)
        return self.cached(
            ("featuremap_matches", m),
            lambda: self._df(
                "SELECT site_id, layer_idx, channel, y, x, r FROM featuremap_matches WHERE dataset = ? AND model = ? "
                "ORDER BY site_id, layer_idx, channel",
                [self.dataset, m],
            ),
        )

    def activations(
        self, units: Sequence[tuple[int, int, int, int]] | None = None, model: str | None = None
    ) -> dict[tuple[int, int, int, int], np.ndarray]:
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

    def activation_matrix(self, units: Sequence[tuple[int, int, int, int]], model: str | None = None) -> np.ndarray:
        """(len(units), stimuli) float32 of the given units, in the given order; KeyError names a missing one."""
        table = self.activations(units, model=model)
        out = np.empty((len(units), len(self.stimulus_ids())), np.float32)
        for i, u in enumerate(units):
            key = tuple(int(v) for v in u)
            if key not in table:
                raise KeyError(
                    f"unit {key} of {self._model(model)} is not in unit_activations "
                    "(request it with ctx.request_activations)"
                )
            out[i] = table[key]
        return out

    def _load_activations(
        self, model: str, units: list[tuple[int, int, int, int]] | None
    ) -> dict[tuple[int, int, int, int], np.ndarray]:
        n = len(self.stimulus_ids())
        sql = (
            'SELECT a.layer_idx, a.channel, a.y, a.x, a."values" FROM unit_activations a{join} '
            "WHERE a.dataset = ? AND a.model = ?"
        )
        if units is None:
            tbl = self.con.sql(sql.format(join=""), params=[self.dataset, model]).to_arrow_table()
        else:
            wanted = pd.DataFrame(units, columns=["layer_idx", "channel", "y", "x"]).astype("int32")
            self.con.register("_analyze_wanted_units", wanted)
            try:
                tbl = self.con.sql(
                    sql.format(join=" JOIN _analyze_wanted_units w USING (layer_idx, channel, y, x)"),
                    params=[self.dataset, model],
                ).to_arrow_table()
            finally:
                self.con.unregister("_analyze_wanted_units")
        if tbl.num_rows == 0:
            return {}
        values = tbl.column("values").combine_chunks()
        flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if flat.size != tbl.num_rows * n:
            raise UserError(
                f"unit_activations of {model} on {self.dataset} do not have {n} values per unit; "
                f"rerun `python -m precompute run --dataset {self.dataset} --model {model} --force`"
            )
        matrix = flat.reshape(tbl.num_rows, n)
        keys = zip(*(tbl.column(c).to_numpy() for c in ("layer_idx", "channel", "y", "x")), strict=True)
        return {tuple(int(v) for v in k): matrix[i] for i, k in enumerate(keys)}

    def gathered_units(self, reason: str, model: str | None = None) -> pd.DataFrame:
        """layer_idx, channel, y, x of the units whose activations were gathered for `reason` ('random',
        'requested', ...), in unit order."""
        return self._df(
            "SELECT layer_idx, channel, y, x FROM unit_activations WHERE dataset = ? AND model = ? AND reason = ? "
            "ORDER BY layer_idx, channel, y, x",
            [self.dataset, self._model(model), reason],
        )

    def request_activations(
        self, units: Sequence[tuple[int, int, int, int]], model: str | None = None, source=None
    ) -> int:
        """Gather activations of more units (runs the model; reason 'requested'); returns how many were added.

        `source`: an open ActivationSource of the model to use (default: open the stored model)."""
        m = self._model(model)
        added = gather_more(self.con, self.dataset, m, list(units), self.store, source=source)
        self._cache.pop(("activations", m), None)
        self._cache.pop(("activations_all", m), None)
        return added
