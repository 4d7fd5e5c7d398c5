"""Experiment grids: a typed YAML config, its plan of stages, and the resumable runner (plus the embedded demo)."""

from qadistill.experiments.config import ExperimentConfig, config_from_dict, load_config, save_resolved
from qadistill.experiments.demo import demo_config
from qadistill.experiments.plan import Plan, Stage, format_plan, plan_experiment
from qadistill.experiments.runner import RunOutcome, run_experiment

__all__ = [
    "ExperimentConfig",
    "Plan",
    "RunOutcome",
    "Stage",
    "config_from_dict",
    "demo_config",
    "format_plan",
    "load_config",
    "plan_experiment",
    "run_experiment",
    "save_resolved",
]
