"""Foundations every other layer stands on: nothing here imports from the rest of precompute.

- `errors`      UserError, the one exception type whose message is shown to the user as is
- `store`       the DuckDB store: working copy, publish, locks, steps_done bookkeeping
- `failpoints`  named crash points for the deterministic fault tests (docs/failpoints.md)
- `feeds`       image feeds: a dataset's stimuli decoded on demand (ImageFeed, ArrayFeed, PngFeed, prefetch_images)
"""
