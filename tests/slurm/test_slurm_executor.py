"""`qadistill run` with `executor: {kind: slurm}` against a real single-node SLURM cluster (conftest.py).

Tiny Pythia-architecture models with the real GPT-NeoX tokenizer and a small SQuAD v2-format file (as in
tests/integration/test_run_resume.py). Each stage is a real job; every check reads what SLURM, sacct and the run
folder say, through the `qadistill` command a user types.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_run_resume import write_squad_file  # noqa: E402

from qadistill.experiments.config import load_config  # noqa: E402
from qadistill.experiments.executors import job_arrays, load_jobs  # noqa: E402
from qadistill.experiments.plan import Plan, plan_experiment  # noqa: E402
from qadistill.study import run_study  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]  # one cluster: all in one worker

QADISTILL = str(Path(sys.executable).with_name("qadistill"))
JOBS_TIMEOUT_S = 900
BASE = "squad_v2/0shot/t"
METHODS = [{"name": "srkl", "kind": "distill", "divergence": "srkl"}, {"name": "finetune", "kind": "finetune"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, neox_tokenizer_dir: Path) -> Path:
    """A folder with a tiny saved teacher (`t`), one without weights (`broken`) and the tiny data."""
    from qadistill.models import build_tiny_model, load_real_tokenizer, save_model

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = load_real_tokenizer("pythia", neox_tokenizer_dir.parent)
    save_model(build_tiny_model("pythia", tokenizer, num_layers=4, hidden_size=32, num_heads=2), tokenizer, root / "t")
    (root / "broken").mkdir()
    for item in (root / "t").glob("*.json"):  # a config and a tokenizer but no weights: its training job fails
        (root / "broken" / item.name).write_bytes(item.read_bytes())
    write_squad_file(root / "data")
    return root


def write_config(tiny: Path, path: Path, executor: dict | None, **changes) -> Path:
    config = {
        "name": "tiny",
        "teachers": [{"name": "t", "model": str(tiny / "t"), "students": [{"name": "s", "prune": "half"}]}],
        "methods": METHODS,
        "datasets": ["squad_v2"],
        "shots": [0],
        "seeds": [0, 1],
        "eval_splits": ["validation"],
        "data": {"data_dir": str(tiny / "data"), "splits": {"train": 0.5, "validation": 0.2, "test": 0.2,
                                                            "demo_pool": 0.1}},
        "prompt": {"max_prompt_tokens": 64},
        "generation": {"batch_size": 8, "max_new_tokens": 4},
        "train": {"max_steps": 2, "batch_size": 2, "lr": 1e-3, "checkpoint_interval": 0, "eval_interval": 0,
                  "max_answer_tokens": 6},
        **({"executor": executor} if executor else {}),
        **changes,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def slurm_executor(**changes) -> dict:
    return {"kind": "slurm", "partition": "debug", "cpus_per_task": 1, "time_min": 20, **changes}


def qadistill(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([QADISTILL, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, f"qadistill {' '.join(map(str, args))}: {done.stderr[-3000:]}"
    return done


def states(status_text: str) -> dict[str, str]:
    """{stage id: state} from the `qadistill status` table."""
    rows = status_text.splitlines()[2:]
    return {row.split()[0]: row.split()[2] for row in rows if row.startswith(BASE)}


def wait_until(ready: Callable[[], bool], what: str, timeout: float = JOBS_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2)


def queued_ids(cluster) -> set[str]:
    out = cluster.run("squeue", "--noheader", "--array", "--format=%i").stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def no_job_left(cluster, run_dir: Path) -> Callable[[], bool]:
    ids = {rec["job_id"] for rec in load_jobs(run_dir)["stages"].values()}
    return lambda: not (ids & queued_ids(cluster))


def job_times(cluster, job_ids: set[str]) -> dict[str, tuple[datetime | None, datetime | None]]:
    bases = sorted({j.split("_")[0] for j in job_ids})
    out = cluster.run("sacct", "-n", "-P", "-X", "--format=JobID,Start,End", f"--jobs={','.join(bases)}").stdout
    times = {}
    for line in out.splitlines():
        job, start, end = line.split("|")
        times[job] = tuple(datetime.fromisoformat(t) if t[:1].isdigit() else None for t in (start, end))
    return times


def assert_dependencies_held(cluster, plan: Plan, run_dir: Path) -> None:
    """Every job started at or after the end of each job of a stage it depends on (sacct, 1 s resolution)."""
    jobs = load_jobs(run_dir)["stages"]
    times = job_times(cluster, {rec["job_id"] for rec in jobs.values()})
    checked = 0
    for stage in plan.stages:
        start = times[jobs[stage.id]["job_id"]][0]
        for dep in stage.deps:
            dep_end = times[jobs[dep]["job_id"]][1]
            if start is not None:
                assert dep_end is not None and start >= dep_end, f"{stage.id} started before {dep} ended"
                checked += 1
    assert checked >= len(plan.stages) - 1


def test_grid_through_slurm_matches_local_and_resubmits_a_cancelled_job(slurm_cluster, tiny, tmp_path) -> None:
    config = write_config(tiny, tmp_path / "slurm.yaml", slurm_executor())
    plan = plan_experiment(load_config(config))
    run_dir = tmp_path / "slurm"

    n, arrays = len(plan.stages), len(job_arrays(plan, run_dir, plan.stages, {}))
    assert (n, arrays) == (12, 9)  # the teacher's 2 seeds' evaluations, and each student x method's seeds: arrays
    first = qadistill("run", config, "--out", run_dir)
    assert f"submitted {n} stage(s) as {arrays} SLURM job(s)/array(s)" in first.stdout
    jobs = load_jobs(run_dir)["stages"]
    assert set(jobs) == {s.id for s in plan.stages}
    seeds = [jobs[f"{BASE}/s/srkl/seed{seed}/train"]["job_id"] for seed in (0, 1)]
    assert seeds[0].split("_")[0] == seeds[1].split("_")[0] and seeds[0] != seeds[1]  # one array, two tasks
    assert jobs[f"{BASE}/s/srkl/seed1/eval/validation"]["depends_on"] == [seeds[1]]  # its own seed's task only

    # a second run while jobs wait submits nothing and leaves jobs.json as it was
    again = qadistill("run", config, "--out", run_dir)
    waiting = re.search(rf"nothing new to submit: (\d+) stage\(s\) queued or running, (\d+) of {n} done", again.stdout)
    assert waiting and int(waiting[1]) + int(waiting[2]) == n, again.stdout
    assert load_jobs(run_dir)["stages"] == jobs

    # status while the first jobs run, then cancel one waiting job
    seen: set[str] = set()

    def progressed() -> bool:
        seen.update(states(qadistill("status", run_dir).stdout).values())
        return {"running", "queued"} <= seen

    wait_until(progressed, "a status with running and queued stages")
    leaf = f"{BASE}/s/finetune/seed1/eval/validation"
    slurm_cluster.run("scancel", jobs[leaf]["job_id"])

    # the local executor computes the same grid meanwhile
    local = tmp_path / "local"
    run_study(load_config(write_config(tiny, tmp_path / "local.yaml", None)), local, progress=False, echo=print)

    wait_until(no_job_left(slurm_cluster, run_dir), "the jobs to end")
    status = qadistill("status", run_dir).stdout
    assert states(status) == {s.id: "cancelled" if s.id == leaf else "done" for s in plan.stages}, status
    assert f"cancelled: {leaf}: CANCELLED" in status
    assert f"{n - 1} done, 1 cancelled" in status
    assert_dependencies_held(slurm_cluster, plan, run_dir)
    partial = qadistill("report", run_dir).stdout
    evaluations = len(plan.evaluations)
    assert f"incomplete run: 1 of {evaluations} planned evaluations have no result yet ({leaf})" in partial

    # the next run submits the cancelled stage again, and only it
    third = qadistill("run", config, "--out", run_dir)
    assert f"stage {leaf}: job {jobs[leaf]['job_id']} cancelled" in third.stdout
    assert "submitted 1 stage(s) as 1 SLURM job(s)/array(s)" in third.stdout
    resubmitted = load_jobs(run_dir)["stages"]
    assert resubmitted[leaf]["previous"] == [jobs[leaf]["job_id"]]
    assert {k: v for k, v in resubmitted.items() if k != leaf} == {k: v for k, v in jobs.items() if k != leaf}
    wait_until(no_job_left(slurm_cluster, run_dir), "the resubmitted job to end")

    final = qadistill("run", config, "--out", run_dir)
    assert "summary:" in final.stdout
    summary = (run_dir / "report" / "summary.csv").read_text(encoding="utf-8")
    assert summary == (local / "report" / "summary.csv").read_text(encoding="utf-8")
    for stage in plan.evaluations:  # the same answers, not just the same scores
        ours, theirs = (d / stage.id / "predictions.jsonl" for d in (run_dir, local))
        assert ours.read_text(encoding="utf-8") == theirs.read_text(encoding="utf-8"), stage.id
    assert "incomplete" not in (run_dir / "report" / "report.md").read_text(encoding="utf-8")


def test_failed_job_is_reported_resubmitted_and_cancelled(slurm_cluster, tiny, tmp_path) -> None:
    config = write_config(tiny, tmp_path / "bad.yaml", slurm_executor(), seeds=[0])
    config_doc = yaml.safe_load(config.read_text())
    config_doc["teachers"][0]["model"] = str(tiny / "broken")
    config.write_text(yaml.safe_dump(config_doc, sort_keys=False))
    run_dir = tmp_path / "bad"
    plan = plan_experiment(load_config(config))
    n, arrays = len(plan.stages), len(job_arrays(plan, run_dir, plan.stages, {}))
    qadistill("run", config, "--out", run_dir)
    wait_until(no_job_left(slurm_cluster, run_dir), "the failed job and its dependents to end")

    status = qadistill("status", run_dir).stdout
    teacher = f"{BASE}/teacher/train"
    log = load_jobs(run_dir)["stages"][teacher]["log"]
    assert states(status)[teacher] == "failed"
    assert set(states(status).values()) == {"failed", "cancelled"}  # its dependents never start
    failed_line = next(line for line in status.splitlines() if line.startswith(f"failed: {teacher}"))
    assert failed_line.endswith("has no weights (*.safetensors)") and "FAILED; last line:" in failed_line
    assert Path(log).is_file() and f"{Path(log).parent.name}" in status  # the table names the log

    # running it again resubmits every stage, saying why (held: they wait until cancelled below)
    config_doc["executor"]["extra_sbatch"] = {"hold": True}
    config.write_text(yaml.safe_dump(config_doc, sort_keys=False))
    rerun = qadistill("run", config, "--out", run_dir)
    assert f"stage {teacher}: job" in rerun.stdout and "failed (FAILED; last line:" in rerun.stdout
    assert f"submitted {n} stage(s) as {arrays} SLURM job(s)/array(s)" in rerun.stdout

    # another config into the same folder while its jobs wait: refused, the folder's config untouched
    other = write_config(tiny, tmp_path / "other.yaml", slurm_executor(), seeds=[0], generation={"batch_size": 4})
    refused = qadistill("run", other, "--out", run_dir, check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "has jobs submitted from another config" in refused.stderr and "qadistill cancel" in refused.stderr
    assert load_config(run_dir / "config.resolved.yaml").generation.batch_size == 8
    # and a local run of the same folder too
    local = write_config(tiny, tmp_path / "local.yaml", None, seeds=[0])
    refused = qadistill("run", local, "--out", run_dir, check=False)
    assert refused.returncode == 2 and "SLURM job(s) queued or running" in refused.stderr

    # cancel leaves no job of the run in the queue
    cancelled = qadistill("cancel", run_dir)
    assert cancelled.stdout.startswith(f"cancelled {n} job(s):")
    wait_until(no_job_left(slurm_cluster, run_dir), "the cancelled jobs to leave the queue", timeout=60)
    assert not set(states(qadistill("status", run_dir).stdout).values()) & {"queued", "running"}
    assert qadistill("cancel", run_dir).stdout.strip() == "no queued or running job"


def test_launcher_runs_inside_the_job(slurm_cluster, tiny, tmp_path) -> None:
    """The teacher's training group launches 2 DDP processes with torchrun inside its job; `$VARS` expand there."""
    torchrun = Path(sys.executable).with_name("torchrun")
    logs = tmp_path / "torchrun"
    launcher = (
        f"env ACCELERATE_USE_CPU=1 {torchrun} --nproc_per_node 2 --master_port $MASTER_PORT "
        f"--log-dir {logs}/job-$SLURM_JOB_ID --redirects 3"
    )
    executor = slurm_executor(overrides={"teacher_training": {"cpus_per_task": 2, "launcher": launcher}})
    config = write_config(
        tiny, tmp_path / "ddp.yaml", executor, seeds=[0], methods=[{"name": "ft", "kind": "finetune"}]
    )
    run_dir = tmp_path / "ddp"
    qadistill("run", config, "--out", run_dir)
    teacher = f"{BASE}/teacher/train"
    job = load_jobs(run_dir)["stages"][teacher]["job_id"]
    wait_until(lambda: (run_dir / teacher / "train_result.json").is_file() or not queued_ids(slurm_cluster) & {job},
               "the teacher's training job")  # fmt: skip
    log = Path(load_jobs(run_dir)["stages"][teacher]["log"])
    assert (run_dir / teacher / "train_result.json").is_file(), log.read_text()[-3000:] if log.is_file() else "no log"
    ranks = {p.parent.name for p in (logs / f"job-{job}").rglob("attempt_0/*/stdout.log")}
    assert ranks == {"0", "1"}  # two processes, in the folder named by the job's own $SLURM_JOB_ID
    assert (run_dir / teacher / "launch_job.yaml").is_file()

    assert qadistill("cancel", run_dir).stdout.startswith(("cancelled", "no queued"))
    wait_until(no_job_left(slurm_cluster, run_dir), "the cancelled jobs to leave the queue", timeout=60)
    final = states(qadistill("status", run_dir).stdout)
    assert final[teacher] == "done" and set(final.values()) <= {"done", "cancelled"}


def test_errors_a_user_meets_are_one_line(slurm_cluster, tiny, tmp_path) -> None:
    unknown = write_config(tiny, tmp_path / "gpu.yaml", slurm_executor(partition="gpu"))
    done = qadistill("run", unknown, "--out", tmp_path / "gpu", check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "unknown SLURM partition 'gpu'" in done.stderr and "this cluster has: debug" in done.stderr
    assert not (tmp_path / "gpu" / "jobs.json").exists()

    down = tmp_path / "down.conf"
    conf = slurm_cluster.conf.read_text().splitlines()
    down.write_text("\n".join("SlurmctldPort=1" if x.startswith("SlurmctldPort=") else x for x in conf) + "\n")
    config = write_config(tiny, tmp_path / "ok.yaml", slurm_executor())
    env = {**slurm_cluster.env(), "SLURM_CONF": str(down)}
    done = subprocess.run([QADISTILL, "run", str(config), "--out", str(tmp_path / "down")], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: SLURM is not reachable: sinfo") and "is slurmctld running" in done.stderr
