"""Orchestration: what runs the layers below, in which order, skipping what is done.

- `analyze`     run registered analyses: one step per (analysis, dataset, model), skipped when done on
                the same inputs (the `analyze` command and the demo use it)
- `batch_file`  TOML batch files: their format (BATCH_HELP), reading and checking their structure (Batch,
                RunSpec, AnalyzeSpec); no database
- `batch`       a batch checked against the database, then run: imports and models here, then runs and
                analyses as cluster tasks
- `demo`        the embedded default: its dataset, its models (one list), its analyses, its build order
"""
