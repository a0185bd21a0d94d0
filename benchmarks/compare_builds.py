"""Compare two Unitscope databases table by table: the same rows, every stored value within a tolerance.

    python benchmarks/compare_builds.py BEFORE.duckdb AFTER.duckdb [--tol 1e-6]

Used to show that a change that should not change results (a refactor) does not: build the demo before
and after it, then compare. Every table of the schema is read in full and sorted by its non-float
columns; what records when or how long something ran (timestamps, durations, build ids, build_info) is
left out. Floats (and float lists) must agree within --tol absolutely; everything else exactly. Prints
one line per table and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend import schema  # noqa: E402

#: what says when or how long, not what was computed
SKIPPED_TABLES = {"build_info"}
SKIPPED_COLUMNS = {
    "created_at",
    "updated_at",
    "build_id",
    "match_s",
    "gather_s",
    "inference_s",
    "elapsed_s",
    "seconds",
    "wall_s",
    "onnx_path",
    "export_s",
}


def _columns(con, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [(c, t) for c, t in rows if c not in SKIPPED_COLUMNS and "TIMESTAMP" not in t and not c.endswith("_s")]


def _is_float(dtype: str) -> bool:
    return any(k in dtype for k in ("DOUBLE", "FLOAT", "REAL", "DECIMAL"))


def _close(a, b, tol: float) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= tol
    return a == b


def compare_table(before, after, table: str, tol: float) -> tuple[int, str | None]:
    """(rows, None) when the table agrees, else (rows, what differs)."""
    cols = _columns(before, table)
    if cols != _columns(after, table):
        return 0, f"columns differ: {cols} vs {_columns(after, table)}"
    if not cols:
        return 0, None
    keys = [c for c, t in cols if not _is_float(t) and "[]" not in t] or [c for c, _ in cols]
    sql = f'SELECT {", ".join(chr(34) + c + chr(34) for c, _ in cols)} FROM "{table}" ORDER BY ' + ", ".join(
        f'"{k}"' for k in keys
    )
    a, b = before.execute(sql).fetchall(), after.execute(sql).fetchall()
    if len(a) != len(b):
        return len(a), f"{len(a)} rows before, {len(b)} after"
    worst = 0.0
    for i, (ra, rb) in enumerate(zip(a, b, strict=True)):
        for (name, dtype), x, y in zip(cols, ra, rb, strict=True):
            if not _close(x, y, tol):
                return len(a), f"row {i} column {name} ({dtype}): {str(x)[:80]} vs {str(y)[:80]}"
            if isinstance(x, float) and isinstance(y, float) and not (math.isnan(x) or math.isnan(y)):
                worst = max(worst, abs(x - y))
    return len(a), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tol", type=float, default=1e-6, help="absolute tolerance of float values (1e-6)")
    args = parser.parse_args(argv)
    before = duckdb.connect(str(args.before), read_only=True)
    after = duckdb.connect(str(args.after), read_only=True)
    failed, total = 0, 0
    for table in schema.TABLES_BY_NAME:
        if table in SKIPPED_TABLES:
            continue
        rows, problem = compare_table(before, after, table, args.tol)
        total += rows
        failed += problem is not None
        print(f"{table:28} {rows:>10,} rows  {'same' if problem is None else 'DIFFERS: ' + problem}")
    print(f"{total:,} rows compared; {failed} table(s) differ (tolerance {args.tol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
