"""The schema's building blocks: a column, a table (with its DDL), and the columns many tables share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    #: issue that writes it (skeleton, models, matching, statistics, analyses)
    owner: str = "skeleton"
    #: declare `key` as a PRIMARY KEY. Only for small tables: DuckDB builds an ART index for it, which
    #: costs time and file size on the big ones (responses, trials, matches), where the writer keeps
    #: keys unique and the contract test checks them.
    enforce_key: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl(self) -> str:
        cols = []
        for c in self.columns:
            cols.append(f'"{c.name}" {c.type}' + ("" if c.nullable else " NOT NULL"))
        if self.key and self.enforce_key:
            cols.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in self.key) + ")")
        return f'CREATE TABLE IF NOT EXISTS "{self.name}" (\n  ' + ",\n  ".join(cols) + "\n)"


def C(name: str, type_: str, doc: str, nullable: bool = True) -> Column:  # noqa: N802 - short on purpose
    return Column(name, type_, doc, nullable)


DATASET = C("dataset", "VARCHAR", "dataset name (e.g. synthetic-hvm)", False)
MODEL = C("model", "VARCHAR", "model name (e.g. efficientnet-lite0, pixels, random-efficientnet-lite0)", False)
SITE = C("site_id", "VARCHAR", "recording site id (e.g. Chabo_L_M_5_9, V4-017)", False)
STIM = C("stimulus_id", "VARCHAR", "stimulus id (HvM: the image's SHA1)", False)
REGION = C("region", "VARCHAR", "brain region (V4, IT, ...)", False)
LAYER_IDX = C("layer_idx", "INTEGER", "0-based layer index in network order (layers.layer_idx)", False)
CHANNEL = C("channel", "INTEGER", "feature-map (channel) index of the unit", False)
UY = C("y", "INTEGER", "row of the unit in its feature map (0 for 1-D outputs)", False)
UX = C("x", "INTEGER", "column of the unit in its feature map (0 for 1-D outputs)", False)
R = C("r", "FLOAT", "Pearson r over stimuli between the site's response and the unit's activation", False)
VALUE = C("value", "DOUBLE", "the statistic's value")
CI_LOW = C("ci_low", "DOUBLE", "lower end of the 95% bootstrap interval (NULL when not computed)")
CI_HIGH = C("ci_high", "DOUBLE", "upper end of the 95% bootstrap interval (NULL when not computed)")
CI_SCHEME = C(
    "ci_scheme",
    "VARCHAR",
    "what the interval resamples, e.g. 'sites by animal/array (6) x stimuli by "
    "object (64), 1000 resamples' (NULL: no interval, or written before schemes were stored)",
)
METRIC = C("metric", "VARCHAR", "statistic name (see docs/metrics.md)", False)
