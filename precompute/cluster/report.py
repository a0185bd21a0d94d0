"""What a batch's run reports: each task's outcome, the batch's summary, and the progress lines.

TaskOutcome  what became of one task (ran, skipped, recovered, failed, blocked) and its timings
BatchReport  every task's outcome, the wall time, the Dask dashboard link; `summary()` counts the states
Progress     `[done/total] task: state ... ETA` lines, printed by both executors as tasks finish
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Report = Callable[[str], None]


@dataclass
class TaskOutcome:
    """What became of one task: ran | skipped | recovered (a left-over result ingested) | failed | blocked."""

    task_id: str
    state: str
    compute_s: float = 0.0
    ingest_s: float = 0.0
    prepare_s: float = 0.0
    worker: str = ""
    error: str = ""


@dataclass
class BatchReport:
    outcomes: list[TaskOutcome] = field(default_factory=list)
    wall_s: float = 0.0
    dashboard: str | None = None

    def count(self, state: str) -> int:
        return sum(o.state == state for o in self.outcomes)

    @property
    def failed(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.state in ("failed", "blocked")]

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("ran", "recovered", "skipped", "failed", "blocked") if self.count(s)]
        return f"{len(self.outcomes)} task(s) in {self.wall_s:.1f} s: " + (", ".join(parts) or "nothing to do")


class Progress:
    """`[done/total] task: state ... ETA` lines; the ETA extrapolates the pace of the tasks that ran."""

    def __init__(self, total: int, report: Report):
        self.total, self.report = total, report
        self.done = 0
        self.ran = 0
        self.t0 = time.perf_counter()

    def update(self, o: TaskOutcome) -> None:
        self.done += 1
        self.ran += o.state in ("ran", "recovered")
        elapsed = time.perf_counter() - self.t0
        left = self.total - self.done
        eta = "0:00:00" if left == 0 else (_clock(elapsed / self.ran * left) if self.ran else "?")
        detail = {
            "ran": f"done (compute {o.compute_s:.1f} s"
            + (f" on {o.worker}" if o.worker else "")
            + (f", ingest {o.ingest_s:.2f} s" if o.ingest_s else "")
            + ")",
            "recovered": f"ingested a finished result left in the results folder ({o.ingest_s:.2f} s)",
            "skipped": "already done",
            "failed": f"FAILED: {o.error}",
            "blocked": f"not run: {o.error}",
        }[o.state]
        self.report(f"[{self.done}/{self.total}] {o.task_id}: {detail}; elapsed {_clock(elapsed)}, ETA {eta}")


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
