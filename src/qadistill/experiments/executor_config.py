"""The experiment config's `executor` section: where `qadistill run` executes the stages of a plan.

`kind: local` (the default) runs them one after another in this process. `kind: slurm` submits each unfinished
stage as a SLURM job (through submitit) and returns; the resources a job asks for are the section's, updated by
the override group of its stage (`teacher_training`, `student_training`, `evaluation`, `other`: pruned
initialisations, cache builds and any other stage). See docs/clusters.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from qadistill.config import Strict

RESOURCE_GROUPS = ("teacher_training", "student_training", "evaluation", "other")


class SlurmResources(Strict):
    """What one job asks SLURM for; None leaves a setting to the cluster's defaults.

    `extra_sbatch` adds any other sbatch option (`{constraint: a100, exclude: node7}` becomes
    `--constraint=a100 --exclude=node7`). `launcher` replaces the experiment's `launcher` for the group's training
    stages (e.g. `torchrun --nproc_per_node 4` where the group asks for 4 GPUs).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int | None = Field(None, ge=1)
    cpus_per_task: int | None = Field(None, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    gpus_per_node: int | None = Field(None, ge=0)
    nodes: int | None = Field(None, ge=1)
    extra_sbatch: dict[str, str | int | float | bool] = Field(default_factory=dict)
    launcher: str | None = None

    @field_validator("extra_sbatch")
    @classmethod
    def _option_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not key or key.startswith("-") or any(c.isspace() for c in key):
                raise ValueError(f"extra_sbatch option {key!r} must be an sbatch option name without dashes")
        return value


class SlurmOverrides(Strict):
    """Per stage group settings, each on top of the executor's own."""

    teacher_training: SlurmResources = SlurmResources()
    student_training: SlurmResources = SlurmResources()
    evaluation: SlurmResources = SlurmResources()
    other: SlurmResources = SlurmResources()


class LocalExecutor(Strict):
    """Every stage in this process, in plan order (the default)."""

    kind: Literal["local"] = "local"


class SlurmExecutor(SlurmResources):
    """Every unfinished stage a SLURM job with `afterok` dependencies; `qadistill run` submits and returns.

    Defaults: 1 node, 1 task, 60 minutes. `python` is the interpreter the jobs run (default: this one, which must
    be reachable from the compute nodes); `setup` lines run in the job script before it (`module load cuda`).
    """

    kind: Literal["slurm"]
    time_min: int = Field(60, ge=1)
    nodes: int = Field(1, ge=1)
    python: str | None = None
    setup: list[str] = Field(default_factory=list)
    overrides: SlurmOverrides = SlurmOverrides()

    def resources(self, group: str) -> SlurmResources:
        """This executor's settings updated by the override group's (`extra_sbatch` merged key by key)."""
        if group not in RESOURCE_GROUPS:
            raise ValueError(f"unknown resource group {group!r}; valid: {', '.join(RESOURCE_GROUPS)}")
        base = self.model_dump(include=set(SlurmResources.model_fields))
        extra = getattr(self.overrides, group).model_dump(exclude_unset=True)
        merged = {**base, **{k: v for k, v in extra.items() if k != "extra_sbatch"}}
        merged["extra_sbatch"] = {**base["extra_sbatch"], **extra.get("extra_sbatch", {})}
        return SlurmResources.model_validate(merged)

    def partitions(self) -> set[str]:
        return {p for p in (self.resources(g).partition for g in RESOURCE_GROUPS) if p is not None}


ExecutorConfig = Annotated[LocalExecutor | SlurmExecutor, Field(discriminator="kind")]
