"""The executor section, how stages become SLURM job arrays with dependencies, and the one-line SLURM errors.

These need no cluster (tests/slurm runs the real one): config validation, resource groups and overrides, grouping
of a whole grid into arrays, sbatch parameters, the status table, and what `report` says of a partial run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_plan import grid  # tests/unit is on sys.path (rootdir-less test modules)

from qadistill.errors import QADistillError
from qadistill.experiments import executors, slurm
from qadistill.experiments.config import RESOLVED_CONFIG, config_from_dict, resolved_dict, save_resolved
from qadistill.experiments.executor_config import LocalExecutor, SlurmExecutor
from qadistill.experiments.plan import plan_experiment
from qadistill.report import write_report

SLURM = {
    "kind": "slurm",
    "partition": "gpu",
    "account": "proj",
    "time_min": 120,
    "cpus_per_task": 8,
    "mem_gb": 64,
    "gpus_per_node": 1,
    "extra_sbatch": {"constraint": "a100", "exclude": "node7"},
    "overrides": {
        "teacher_training": {"gpus_per_node": 4, "time_min": 1440, "launcher": "torchrun --nproc_per_node 4"},
        "evaluation": {"partition": "short", "extra_sbatch": {"constraint": "v100"}},
        "other": {"gpus_per_node": 0, "mem_gb": 8},
    },
}


def test_executor_defaults_to_local_and_validates_slurm_settings() -> None:
    assert isinstance(grid().executor, LocalExecutor)
    executor = grid(executor=SLURM).executor
    assert isinstance(executor, SlurmExecutor)
    teacher = executor.resources("teacher_training")
    assert (teacher.gpus_per_node, teacher.time_min, teacher.partition, teacher.cpus_per_task) == (4, 1440, "gpu", 8)
    assert teacher.launcher == "torchrun --nproc_per_node 4"
    evaluation = executor.resources("evaluation")
    assert evaluation.partition == "short" and evaluation.launcher is None
    assert evaluation.extra_sbatch == {"constraint": "v100", "exclude": "node7"}  # merged key by key
    other = executor.resources("other")
    assert (other.gpus_per_node, other.mem_gb, other.time_min) == (0, 8, 120)
    assert executor.resources("student_training").gpus_per_node == 1
    assert executor.partitions() == {"gpu", "short"}
    # the resolved config (what jobs get) validates to the same executor
    assert config_from_dict(resolved_dict(grid(executor=SLURM))).executor == executor


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        ({"kind": "slurm", "partiton": "gpu"}, r"executor\.slurm\.partiton: unknown key"),
        ({"kind": "pbs"}, r"executor: Input tag 'pbs'"),
        ({"kind": "slurm", "time_min": 0}, r"executor\.slurm\.time_min: Input should be greater than or equal to 1"),
        ({"kind": "slurm", "extra_sbatch": {"--mem": "4G"}}, r"extra_sbatch option '--mem' must be an sbatch option"),
        ({"kind": "slurm", "overrides": {"cache": {}}}, r"executor\.slurm\.overrides\.cache: unknown key"),
        ({"kind": "local", "partition": "gpu"}, r"executor\.local\.partition: unknown key"),
    ],
)
def test_bad_executor_settings_are_one_line_errors(executor: dict, message: str) -> None:
    with pytest.raises(QADistillError, match=message) as info:
        grid(executor=executor)
    assert "\n" not in str(info.value)


def test_every_stage_kind_maps_to_one_override_group() -> None:
    plan = plan_experiment(grid())
    groups = {(s.kind, s.role): executors.resource_group(s) for s in plan.stages}
    assert groups == {
        ("finetune", "teacher"): "teacher_training",
        ("evaluate", "teacher"): "evaluation",
        ("prune", "student"): "other",
        ("distill", "student"): "student_training",
        ("finetune", "student"): "student_training",
        ("evaluate", "student"): "evaluation",
    }


def test_a_grid_becomes_arrays_of_independent_stages_in_dependency_order(tmp_path: Path) -> None:
    plan = plan_experiment(grid())
    arrays = executors.job_arrays(plan, tmp_path, plan.stages, {})
    assert sorted(s.id for a in arrays for s in a) == sorted(s.id for s in plan.stages)
    position = {s.id: i for i, a in enumerate(arrays) for s in a}
    for i, array in enumerate(arrays):
        assert len({(s.kind, s.deps) for s in array}) == 1, "an array's stages wait on the same stages"
        for stage in array:
            assert all(position[d] < i for d in stage.deps), f"{stage.id} is submitted before a dependency"
            assert not set(stage.deps) & {s.id for s in array}
    # the 3 seeds of a pruned student x method wait on the same init: one array; so do the evaluations of one
    # trained model; stages that wait on nothing are one array per resource group: teachers (datasets x shots x
    # teachers), and fine-tuned students given by a model id (datasets x shots x students x seeds)
    half = next(a for a in arrays if a[0].id == "squad_v2/0shot/pythia-1b/pythia-1b-half/finetune/seed3/train")
    assert [s.seed for s in half] == [3, 1, 2] and all(s.method_name == "finetune" for s in half)
    free = [a for a in arrays if not a[0].deps]
    assert [(len(a), a[0].role) for a in free] == [(2 * 2 * 2, "teacher"), (2 * 2 * 2 * 3, "student")]
    evaluations = {(a[0].role, len(a)) for a in arrays if a[0].kind == "evaluate"}
    assert evaluations == {("teacher", 3 * 2), ("student", 2)}  # a teacher's seeds x splits; a student's splits
    # finished dependencies drop out; queued or running ones are waited on by their job id
    teacher = plan.stages[0]
    active = {teacher.id: "41"}
    waiting = executors.job_arrays(plan, tmp_path, [s for s in plan.stages if s.id != teacher.id], active)
    first_eval = next(a for a in waiting if teacher.id in a[0].deps)
    assert first_eval[0].kind == "evaluate" and len(first_eval) == 3 * 2


def test_sbatch_parameters() -> None:
    executor = grid(executor=SLURM).executor
    params = slurm._parameters(executor.resources("teacher_training"), "grid-finetune", ["12_0", "13"], ["module x"])
    assert params["dependency"] == "afterok:12_0:13"
    assert (params["partition"], params["account"], params["gpus_per_node"], params["time"]) == ("gpu", "proj", 4, 1440)
    assert params["mem"] == "65536M" and params["cpus_per_task"] == 8 and params["ntasks_per_node"] == 1
    assert params["additional_parameters"] == {"kill-on-invalid-dep": "yes", "constraint": "a100", "exclude": "node7"}
    assert params["use_srun"] is True and params["setup"] == ["module x"]
    two_nodes = executor.resources("student_training").model_copy(update={"nodes": 2})
    params = slurm._parameters(two_nodes, "x", [], [])
    assert params["use_srun"] is False and "dependency" not in params and params["nodes"] == 2


def test_config_hash_ignores_where_and_how_stages_run() -> None:
    base = executors.config_hash(grid())
    assert executors.config_hash(grid(executor=SLURM, launcher="torchrun --nproc_per_node 2")) == base
    assert executors.config_hash(grid(seeds=[3, 1])) != base


def test_missing_sbatch_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(QADistillError, match=r"^SLURM is not reachable: sbatch is not on PATH; is slurmctld running"):
        slurm.check_partitions(["gpu"])


def test_launcher_inside_a_job_is_the_groups_with_variables_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("QAD_PORT", "29617")
    doc = {**SLURM, "overrides": {"teacher_training": {"launcher": "torchrun --master_port $QAD_PORT"}}}
    config = grid(executor=doc, launcher="accelerate launch")
    plan = plan_experiment(config)
    teacher, student = plan.stages[0], next(s for s in plan.stages if s.kind == "distill")
    assert executors.job_launcher(config, teacher) == "torchrun --master_port 29617"
    assert executors.job_launcher(config, student) == "accelerate launch"
    assert executors.job_launcher(grid(executor=SLURM), student) is None


def test_status_table_and_failed_lines(tmp_path: Path) -> None:
    plan = plan_experiment(grid(seeds=[1]))
    log = tmp_path / "slurm" / "7_0_log.out"
    log.parent.mkdir()
    log.write_text("starting\nqadistill.errors.QADistillError: stage x: model folder is missing\n\n")
    stages = plan.stages[:4]
    states = [
        executors.StageState(stages[0], "done", "5", tmp_path / "slurm" / "5_0_log.out"),
        executors.StageState(stages[1], "running", "6", None, "RUNNING"),
        executors.StageState(stages[2], "failed", "7", log, f"FAILED; {executors._log_tail(log)}"),
        executors.StageState(stages[3], "not submitted"),
    ]
    text = executors.format_states(states, tmp_path)
    lines = text.splitlines()
    assert lines[0].split() == ["stage", "kind", "state", "job", "log"]
    assert lines[2].split()[2:] == ["done", "5", str(tmp_path / "slurm" / "5_0_log.out")]
    assert f"failed: {stages[2].id}: FAILED; last line: qadistill.errors.QADistillError: stage x:" in text
    assert lines[-1] == "4 stages: 1 done, 1 running, 1 failed, 1 not submitted"


def test_status_of_a_local_run_shows_the_stage_it_is_computing(tmp_path: Path) -> None:
    from qadistill.experiments.runner import stage_lock

    plan = plan_experiment(grid(seeds=[1]))
    computing, waiting = plan.stages[0], plan.stages[1]
    with stage_lock(computing, tmp_path):  # what a local `qadistill run` holds
        states = executors.stage_states(plan, tmp_path, {"stages": {}})
        assert (states[0].state, states[0].detail) == ("running", "in a local qadistill run")
        assert states[1].stage == waiting and states[1].state == "not submitted"
    assert executors.stage_states(plan, tmp_path, {"stages": {}})[0].state == "not submitted"  # lock released


def test_report_of_a_partial_run_says_what_is_missing(tmp_path: Path) -> None:
    config = grid(seeds=[1], datasets=["squad_v2"], shots=[0])
    save_resolved(config, tmp_path)
    plan = plan_experiment(config)
    with pytest.raises(
        QADistillError, match=r"no evaluation results under .* yet; incomplete run: (\d+) of \1 planned"
    ):
        write_report(tmp_path)
    # one evaluation finished: the report has it, and says how many are missing
    stage = plan.evaluations[0]
    folder = stage.folder(tmp_path)
    folder.mkdir(parents=True)
    metrics = {
        "model": stage.model, "role": stage.role, "method": stage.method, "dataset": stage.dataset,
        "shots": stage.shots, "split": stage.split, "seed": stage.seed, "params": 1000, "teacher": stage.teacher,
        "teacher_params": 1000, "exact": 50.0, "f1": 60.0, "rouge_l": 55.0, "total": 10,
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    paths = write_report(tmp_path)
    n = len(plan.evaluations)
    assert paths.progress.planned == n and len(paths.progress.missing) == n - 1
    assert f"incomplete run: {n - 1} of {n} planned evaluations have no result yet" in paths.report_md.read_text()
    assert (tmp_path / RESOLVED_CONFIG).is_file()


def test_sacct_ids_of_array_tasks_that_never_started() -> None:
    assert slurm.array_tasks("15_[0-2,7%2]") == ["15_0", "15_1", "15_2", "15_7"]
    assert slurm.array_tasks("15_[4]") == ["15_4"]
    assert slurm.array_tasks("15_3") == ["15_3"] and slurm.array_tasks("16") == ["16"]
