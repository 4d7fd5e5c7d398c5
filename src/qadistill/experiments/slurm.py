"""Talking to SLURM: submit a job array through submitit, read job states from squeue and sacct, cancel jobs.

Every failure a user can meet (no `sbatch`, the controller down, an unknown partition, a rejected submission) is
one QADistillError line that says what to do. Nothing here knows about stage kinds: callers pass the function a
job runs, its arguments and the resources it asks for.
"""

from __future__ import annotations

import getpass
import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError

from qadistill.errors import QADistillError
from qadistill.experiments.executor_config import SlurmResources

logger = logging.getLogger("qadistill.experiments")

ACTIVE_STATES = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
    "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD",
}  # fmt: skip
QUERY_TIMEOUT_S = 60
FIX = "is slurmctld running, and does SLURM_CONF point to the cluster's slurm.conf? (or set executor.kind: local)"


@dataclass(frozen=True)
class JobInfo:
    """A job (or array task) as SLURM reports it: `state` is SLURM's (PENDING, RUNNING, FAILED, CANCELLED...)."""

    job_id: str
    state: str
    reason: str = ""
    start: str | None = None
    end: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True)
class Submitted:
    """One submitted array task: its job id (`123_0`, or `123` for a single job) and its log file."""

    job_id: str
    log: Path


class _StageCall(submitit.helpers.Checkpointable):
    """The callable a job runs. Checkpointable, so a job that reaches its time limit (or is preempted) is requeued
    by submitit with the same arguments; a training stage then resumes from its last checkpoint."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


# ---------------------------------------------------------------------------------------------- commands


def _command(args: Sequence[str], what: str) -> str:
    """Run a SLURM client command; its stdout, or one line naming the command and its error."""
    if shutil.which(args[0]) is None:
        raise QADistillError(f"SLURM is not reachable: {args[0]} is not on PATH ({what}); {FIX}")
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise QADistillError(
            f"SLURM is not reachable: {' '.join(args)} gave no answer in {QUERY_TIMEOUT_S} s; {FIX}"
        ) from None
    if done.returncode != 0:
        raise QADistillError(f"SLURM is not reachable: {' '.join(args)} failed: {last_line(done.stderr)}; {FIX}")
    return done.stdout


def last_line(text: str) -> str:
    """The last line that says something: not blank, not srun's own `srun: error: ... Exited with exit code`."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("srun: ")]
    return lines[-1] if lines else "(no output)"


def partitions() -> set[str]:
    """The cluster's partition names (also a check that the controller answers)."""
    out = _command(["sinfo", "--noheader", "--format=%R"], "listing partitions")
    return {line.strip() for line in out.splitlines() if line.strip()}


def check_partitions(wanted: Iterable[str]) -> None:
    """Fail with one line when the controller is down or a wanted partition does not exist."""
    if shutil.which("sbatch") is None:
        raise QADistillError(f"SLURM is not reachable: sbatch is not on PATH; {FIX}")
    known = partitions()
    for name in sorted(set(wanted)):
        if name not in known:
            raise QADistillError(
                f"unknown SLURM partition {name!r} in the executor settings; set executor.partition (and any "
                f"override's) to one this cluster has: {', '.join(sorted(known))}"
            )


def job_states(job_ids: Iterable[str], since: datetime | None = None) -> dict[str, JobInfo]:
    """States of `job_ids` (`123`, `123_4`): queued and running jobs from squeue, ended ones from sacct.

    A job neither lists (sacct without accounting, or records purged) is absent from the answer.
    """
    wanted = set(job_ids)
    if not wanted:
        return {}
    found = queued(wanted)
    rest = wanted - set(found)
    if rest:
        found.update(_accounted(rest, since))
    return found


def queued(wanted: set[str]) -> dict[str, JobInfo]:
    """Those of `wanted` that are in the queue (pending, running, completing...), from squeue."""
    out = _command(
        ["squeue", "--noheader", "--array", f"--user={getpass.getuser()}", "--format=%i|%T|%r|%S"], "reading the queue"
    )
    found = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0] in wanted:
            found[parts[0]] = JobInfo(parts[0], parts[1], parts[2], _time(parts[3]))
    return found


def _accounted(wanted: set[str], since: datetime | None) -> dict[str, JobInfo]:
    """Ended jobs from sacct; empty where accounting is not configured (the caller treats them as gone)."""
    args = ["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State,Reason,Start,End"]
    args += [f"--jobs={','.join(sorted({j.split('_')[0] for j in wanted}))}"]  # an array's id lists all its tasks
    if since is not None:
        args.append(f"--starttime={since.strftime('%Y-%m-%dT%H:%M:%S')}")
    try:
        out = _command(args, "reading job accounting")
    except QADistillError as exc:
        logger.warning("%s; ended jobs show as gone", exc)
        return {}
    found = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        for job_id in array_tasks(parts[0]):
            if job_id in wanted:
                found[job_id] = JobInfo(job_id, parts[1].split()[0], parts[2], _time(parts[3]), _time(parts[4]))
    return found


def array_tasks(job_id: str) -> list[str]:
    """sacct's id of array tasks that never started, `15_[0-3,7%2]`, as `15_0` ... `15_3`, `15_7`; others as is."""
    match = re.fullmatch(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]", job_id)
    if match is None:
        return [job_id]
    tasks = []
    for part in match.group(2).split(","):
        first, _, last = part.partition("-")
        tasks += [f"{match.group(1)}_{i}" for i in range(int(first), int(last or first) + 1)]
    return tasks


def _time(text: str) -> str | None:
    return text if text and text not in ("Unknown", "N/A", "None") else None


def cancel(job_ids: Iterable[str]) -> None:
    ids = sorted(set(job_ids))
    if ids:
        _command(["scancel", *ids], "cancelling jobs")


# ---------------------------------------------------------------------------------------------- submission


def submit_array(
    function: Callable[..., Any],
    calls: list[tuple[Any, ...]],
    resources: SlurmResources,
    *,
    folder: Path,
    job_name: str,
    dependency: Sequence[str] = (),
    python: str | None = None,
    setup: Sequence[str] = (),
) -> list[Submitted]:
    """Submit `function(*args)` for each `args` in `calls` as one job array (a plain job when there is one call),
    started only after every job in `dependency` succeeded; returns the job ids and log files in call order.

    Jobs whose dependency fails are removed by SLURM (`--kill-on-invalid-dep`), so they end as cancelled rather
    than waiting forever; a job ends with its stdout and stderr in one log file.
    """
    executor = submitit.SlurmExecutor(folder=folder / "%j", python=python, max_num_timeout=3)
    executor.update_parameters(**_parameters(resources, job_name, dependency, setup))
    try:
        jobs = executor.map_array(_StageCall(function), *zip(*calls, strict=True))
    except FailedJobError as exc:
        raise QADistillError(f"sbatch refused the {job_name} job: {last_line(str(exc))}") from None
    except FileNotFoundError:
        raise QADistillError(f"SLURM is not reachable: sbatch is not on PATH; {FIX}") from None
    return [Submitted(job.job_id, Path(str(job.paths.stdout).replace("%t", "0"))) for job in jobs]


def _parameters(resources: SlurmResources, job_name: str, dependency: Sequence[str], setup: Sequence[str]) -> dict:
    nodes = resources.nodes or 1
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": resources.time_min,
        "nodes": nodes,
        "ntasks_per_node": 1,
        "stderr_to_stdout": True,
        # one node: the job is one srun task (submitit relays the time-limit signal to it); several nodes: the job
        # runs once in the batch script and the stage's launcher (`srun torchrun ...`) spreads over the nodes
        "use_srun": nodes == 1,
        "setup": list(setup),
        "additional_parameters": {"kill-on-invalid-dep": "yes", **resources.extra_sbatch},
    }
    for key in ("partition", "account", "qos", "cpus_per_task", "gpus_per_node"):
        value = getattr(resources, key)
        if value is not None:
            params[key] = value
    if resources.mem_gb is not None:
        params["mem"] = f"{max(1, round(resources.mem_gb * 1024))}M"
    if dependency:
        params["dependency"] = "afterok:" + ":".join(dependency)
    return params
