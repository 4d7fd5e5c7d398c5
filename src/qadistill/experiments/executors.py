"""The SLURM executor: every unfinished stage of a plan a job, dependencies as `afterok`, bookkeeping in jobs.json.

The executor knows stages only through the plan: their ids, dependencies and result files (`Stage.done`). A job
runs one stage through the runner's own stage function, so it writes the same atomic result files as a local run,
and a stage is finished exactly when its result file exists, however it ran. Stages of one kind that depend on
the same jobs (the seeds of a student, the splits of an evaluation) go into one job array.

`DIR/jobs.json` maps each submitted stage to its job id, log file, submission time and the hash of the config it
was submitted from. From it and from squeue/sacct, `stage_states` tells each stage's state: done, queued,
running, failed, cancelled or not submitted. A new `qadistill run` submits exactly the stages that are neither
done nor queued/running (so never a duplicate, and failed or cancelled ones again), `cancel_run` cancels the
run's queued and running jobs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qadistill.errors import QADistillError
from qadistill.experiments.config import RESOLVED_CONFIG, ExperimentConfig, load_config, resolved_dict, save_resolved
from qadistill.experiments.executor_config import SlurmExecutor
from qadistill.experiments.plan import Plan, Stage, plan_experiment
from qadistill.experiments.slurm import JobInfo, cancel, check_partitions, job_states, last_line, queued, submit_array
from qadistill.io import atomic_write_json, is_locked

logger = logging.getLogger("qadistill.experiments")

JOBS_FILE = "jobs.json"
LOG_DIR = "slurm"
ACTIVE = ("queued", "running")
RENDEZVOUS_PORT = 29500
MAX_ARRAY = 1000  # SLURM's default MaxArraySize is 1001 tasks


def resource_group(stage: Stage) -> str:
    """The executor override group of a stage: teacher training, student training, evaluation, or other."""
    if stage.kind == "evaluate":
        return "evaluation"
    if stage.is_training:
        return "teacher_training" if stage.role == "teacher" else "student_training"
    return "other"


def config_hash(config: ExperimentConfig) -> str:
    """What the stages compute: the resolved config without where (`executor`) and how (`launcher`) they run."""
    doc = resolved_dict(config)
    doc.pop("executor", None)
    doc.pop("launcher", None)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_plan(run_dir: Path) -> Plan:
    """The plan of the config a run folder was last run or submitted with (its config.resolved.yaml)."""
    path = Path(run_dir) / RESOLVED_CONFIG
    if not path.is_file():
        raise QADistillError(f"{run_dir} has no {RESOLVED_CONFIG}: no `qadistill run` has used it as --out")
    return plan_experiment(load_config(path), Path(run_dir))


# ------------------------------------------------------------------------------------------------ jobs.json


def load_jobs(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / JOBS_FILE
    if not path.is_file():
        return {"stages": {}}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QADistillError(f"{path} is unreadable ({exc}); delete it only once no job of this run is left") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), dict):
        raise QADistillError(f"{path} is not a jobs file of qadistill (no 'stages' mapping)")
    return doc


def _save_jobs(run_dir: Path, doc: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / JOBS_FILE, doc)


# --------------------------------------------------------------------------------------------------- states


@dataclass(frozen=True)
class StageState:
    """Where one stage stands. `detail` is SLURM's state and reason, or the last line of a failed job's log."""

    stage: Stage
    state: str
    job_id: str | None = None
    log: Path | None = None
    detail: str = ""


def stage_states(plan: Plan, run_dir: Path, jobs: dict[str, Any] | None = None) -> list[StageState]:
    """Every stage's state from its result file, jobs.json and SLURM (queried once for all jobs)."""
    run_dir = Path(run_dir)
    jobs = load_jobs(run_dir) if jobs is None else jobs
    records = {sid: rec for sid, rec in jobs["stages"].items() if sid in plan.by_id}
    pending = {sid: rec for sid, rec in records.items() if not plan.by_id[sid].done(run_dir)}
    since = min((_parse_time(r["submitted"]) for r in pending.values()), default=None)
    infos = job_states((r["job_id"] for r in pending.values()), since) if pending else {}
    return [_state(stage, run_dir, records.get(stage.id), infos) for stage in plan.stages]


def _state(stage: Stage, run_dir: Path, record: dict | None, infos: dict[str, JobInfo]) -> StageState:
    job_id = record["job_id"] if record else None
    log = Path(record["log"]) if record else None
    if stage.done(run_dir):  # read after SLURM answered: a job that finished meanwhile counts as done
        return StageState(stage, "done", job_id, log)
    if record is None:
        if is_locked(stage.lock_path(run_dir)):  # a local `qadistill run` is computing it
            return StageState(stage, "running", detail="in a local qadistill run")
        return StageState(stage, "not submitted")
    info = infos.get(job_id) if job_id is not None else None
    if info is None:
        return StageState(stage, "failed", job_id, log, f"job gone from SLURM; {_log_tail(log)}")
    if info.active:
        state = "running" if info.state in ("RUNNING", "COMPLETING", "CONFIGURING") else "queued"
        reason = f" ({info.reason})" if info.reason and info.reason != "None" else ""
        return StageState(stage, state, job_id, log, f"{info.state}{reason}")
    if info.state == "COMPLETED":
        return StageState(stage, "failed", job_id, log, f"job completed without {stage.result_file}; {_log_tail(log)}")
    state = "cancelled" if info.state == "CANCELLED" else "failed"
    if info.start is None:  # e.g. removed because a job it waited on failed
        return StageState(stage, state, job_id, log, f"{info.state} before it started (was waiting: {info.reason})")
    return StageState(stage, state, job_id, log, f"{info.state}; {_log_tail(log)}")


def _log_tail(log: Path | None) -> str:
    if log is None or not log.is_file():
        return "no log yet"
    try:
        return f"last line: {last_line(log.read_text(encoding='utf-8', errors='replace'))}"
    except OSError as exc:
        return f"log unreadable ({exc.strerror})"


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone()


def format_states(states: list[StageState], run_dir: Path) -> str:
    """The `qadistill status` table, then the SLURM state and last log line of each failed or cancelled stage."""
    header = ("stage", "kind", "state", "job", "log")
    rows = [
        (s.stage.id, s.stage.kind, s.state, s.job_id or "", _relative(s.log, run_dir) if s.log else "") for s in states
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"{s.state}: {s.stage.id}: {s.detail}" for s in states if s.state in ("failed", "cancelled")]
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    order = ("done", "running", "queued", "failed", "cancelled", "not submitted")
    lines.append(f"{len(states)} stages: " + ", ".join(f"{counts[k]} {k}" for k in order if k in counts))
    return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    """`path` as `root/...` when it lies in the run folder (shorter in the table), else as it is."""
    try:
        return str(root / path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------------- submission


def submit_plan(
    plan: Plan, run_dir: Path, job_function: Callable[..., Any], echo: Callable[[str], None] = print
) -> dict[str, str]:
    """Submit every stage that is neither done nor queued/running; returns {stage id: job id} of new jobs.

    Refuses when jobs of another config are still queued or running in `run_dir`. jobs.json is written after
    each submitted array, so an interruption never leaves a submitted job unrecorded.
    """
    executor = plan.config.executor
    if not isinstance(executor, SlurmExecutor):
        raise QADistillError("submit_plan needs executor.kind: slurm")
    check_partitions(executor.partitions())
    run_dir = Path(run_dir)
    jobs = load_jobs(run_dir)
    states = {s.stage.id: s for s in stage_states(plan, run_dir, jobs)}
    _refuse_other_config(plan, run_dir, jobs, states)
    save_resolved(plan.config, run_dir)
    active = {sid: s.job_id for sid, s in states.items() if s.state in ACTIVE and s.job_id}
    todo = [s for s in plan.stages if states[s.id].state not in ("done", *ACTIVE)]
    for stage in todo:
        old = states[stage.id]
        if old.state in ("failed", "cancelled"):
            echo(f"stage {stage.id}: job {old.job_id} {old.state} ({old.detail}, log {old.log}); submitting it again")
    jobs.update(experiment=plan.config.name, config_hash=config_hash(plan.config))
    doc, where = resolved_dict(plan.config), str(run_dir.resolve())
    job_of = dict(active)
    new: dict[str, str] = {}
    for group in job_arrays(plan, run_dir, todo, active):
        kind, resources = group[0].kind, executor.resources(resource_group(group[0]))
        deps = sorted({job_of[d] for s in group for d in s.deps if not plan.by_id[d].done(run_dir)})
        submitted = submit_array(
            job_function, [(doc, where, s.id) for s in group], resources, folder=run_dir / LOG_DIR,
            job_name=f"{plan.config.name}-{kind}", dependency=deps, python=executor.python, setup=executor.setup,
        )  # fmt: skip
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for stage, job in zip(group, submitted, strict=True):
            previous = jobs["stages"].get(stage.id)
            history = [*previous.get("previous", []), previous["job_id"]] if previous else []
            jobs["stages"][stage.id] = {
                "job_id": job.job_id, "kind": stage.kind, "submitted": now, "log": str(job.log),
                "config_hash": jobs["config_hash"], "depends_on": deps, "previous": history,
            }  # fmt: skip
            job_of[stage.id] = new[stage.id] = job.job_id
        _save_jobs(run_dir, jobs)
        logger.info("submitted %s as job %s (after %s)", [s.id for s in group], submitted[0].job_id, deps or "none")
    _echo_submission(plan, run_dir, new, active, echo)
    return new


def job_arrays(plan: Plan, run_dir: Path, todo: list[Stage], active: dict[str, str]) -> list[list[Stage]]:
    """`todo` in groups that can be one job array: same kind and resources, waiting on exactly the same jobs.

    Groups come in plan order of their first stage, so every group's dependencies are submitted before it.
    """
    groups: dict[tuple, list[Stage]] = {}
    for stage in todo:
        waits = tuple(sorted(active.get(d, f"stage:{d}") for d in stage.deps if not plan.by_id[d].done(run_dir)))
        groups.setdefault((stage.kind, resource_group(stage), waits), []).append(stage)
    return [group[i : i + MAX_ARRAY] for group in groups.values() for i in range(0, len(group), MAX_ARRAY)]


def _refuse_other_config(plan: Plan, run_dir: Path, jobs: dict, states: dict[str, StageState]) -> None:
    mine = config_hash(plan.config)
    for sid, state in states.items():
        record = jobs["stages"].get(sid)
        if state.state in ACTIVE and record and record.get("config_hash") != mine:
            raise QADistillError(
                f"run folder {run_dir} has jobs submitted from another config (job {state.job_id}, stage {sid}, "
                f"{state.state}); wait for them or `qadistill cancel {run_dir}`, or use another --out"
            )
    stray = [sid for sid, rec in jobs["stages"].items() if sid not in plan.by_id]
    if stray and jobs.get("config_hash") not in (None, mine):
        if queued({jobs["stages"][sid]["job_id"] for sid in stray}):
            raise QADistillError(
                f"run folder {run_dir} has queued or running jobs of stages this config does not have (e.g. "
                f"{stray[0]}): it was submitted from another config; `qadistill cancel {run_dir}` or use another --out"
            )


def _echo_submission(
    plan: Plan, run_dir: Path, new: dict[str, str], active: dict[str, str], echo: Callable[[str], None]
) -> None:
    done = sum(1 for s in plan.stages if s.done(run_dir))
    arrays = len({job.split("_")[0] for job in new.values()})
    if new:
        echo(f"submitted {len(new)} stage(s) as {arrays} SLURM job(s)/array(s); {len(active)} already queued or "
             f"running, {done} of {len(plan.stages)} done")  # fmt: skip
    else:
        echo(f"nothing new to submit: {len(active)} stage(s) queued or running, {done} of {len(plan.stages)} done")
    echo(f"jobs:    {run_dir / JOBS_FILE}")
    echo(f"status:  qadistill status {run_dir}")
    echo(f"report:  qadistill report {run_dir}   (once the jobs are done, or `qadistill run` again)")


# ---------------------------------------------------------------------------------------------- other commands


def active_jobs(plan: Plan | None, run_dir: Path) -> dict[str, str]:
    """{stage id: job id} of the run's queued and running jobs (every recorded stage when `plan` is None)."""
    jobs = load_jobs(run_dir)
    records = jobs["stages"]
    if not records:
        return {}
    infos = queued({rec["job_id"] for rec in records.values()})
    return {
        sid: rec["job_id"]
        for sid, rec in records.items()
        if (plan is None or sid in plan.by_id) and rec["job_id"] in infos and infos[rec["job_id"]].active
    }


def cancel_run(run_dir: Path) -> list[str]:
    """Cancel the run's queued and running jobs (from jobs.json); returns the cancelled job ids."""
    run_dir = Path(run_dir)
    if not (run_dir / JOBS_FILE).is_file():
        raise QADistillError(f"{run_dir} has no {JOBS_FILE}: no SLURM job was submitted from it")
    ids = sorted(set(active_jobs(None, run_dir).values()))
    cancel(ids)
    return ids


def refuse_active_jobs(plan: Plan, run_dir: Path) -> None:
    """A local run must not compute stages that jobs of the same folder are computing."""
    if not (Path(run_dir) / JOBS_FILE).is_file():
        return
    try:
        active = active_jobs(plan, run_dir)
    except QADistillError as exc:  # no SLURM here (a copied run folder): nothing can be running
        logger.warning("cannot check the SLURM jobs of %s: %s", run_dir, exc)
        return
    if active:
        sid, job = next(iter(active.items()))
        raise QADistillError(
            f"run folder {run_dir} has {len(active)} SLURM job(s) queued or running (e.g. job {job}, stage {sid}); "
            f"wait for them (qadistill status {run_dir}) or `qadistill cancel {run_dir}` before running it locally"
        )


# ---------------------------------------------------------------------------------------------- inside a job


def job_launcher(config: ExperimentConfig, stage: Stage) -> str | None:
    """The launcher of `stage` inside its job: the group's override or the experiment's, with `$VARS` expanded.

    For launchers that span nodes it exports MASTER_ADDR (the allocation's first node) and MASTER_PORT unless set,
    so `torchrun --master_addr $MASTER_ADDR ...` works as written in the config.
    """
    executor = config.executor
    launcher = config.launcher
    if isinstance(executor, SlurmExecutor):
        launcher = executor.resources(resource_group(stage)).launcher or launcher
    if launcher is None:
        return None
    if "SLURM_JOB_ID" in os.environ:
        import submitit

        os.environ.setdefault("MASTER_ADDR", submitit.JobEnvironment().hostnames[0])
        os.environ.setdefault("MASTER_PORT", str(RENDEZVOUS_PORT + int(os.environ["SLURM_JOB_ID"]) % 10000))
    return os.path.expandvars(launcher)
