"""Which evaluations of a run's plan have no result yet, so a report of a partial run says what it lacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qadistill.experiments.config import RESOLVED_CONFIG, load_config
from qadistill.experiments.plan import plan_experiment

MAX_NAMED = 5


@dataclass(frozen=True)
class Progress:
    """`missing` evaluation stage ids out of `planned` (planned is 0 when the folder has no resolved config)."""

    planned: int = 0
    missing: list[str] = field(default_factory=list)

    def text(self, run_dir: Path) -> str:
        """One line: how many evaluations are missing, the first few, and where to look."""
        named = ", ".join(self.missing[:MAX_NAMED]) + (", ..." if len(self.missing) > MAX_NAMED else "")
        return (
            f"incomplete run: {len(self.missing)} of {self.planned} planned evaluations have no result yet "
            f"({named}); `qadistill status {run_dir}` shows where each stage stands"
        )


def run_progress(run_dir: Path) -> Progress:
    """The plan's evaluations (from `config.resolved.yaml`) that lack their result file."""
    config_path = Path(run_dir) / RESOLVED_CONFIG
    if not config_path.is_file():
        return Progress()
    plan = plan_experiment(load_config(config_path), Path(run_dir))
    return Progress(len(plan.evaluations), [s.id for s in plan.evaluations if not s.done(run_dir)])
