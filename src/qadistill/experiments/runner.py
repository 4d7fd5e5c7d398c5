"""Execute an experiment plan stage by stage, resumably, and finish with the report.

Resumption rests on three rules: a stage is finished exactly when its result file exists; every result file is
written atomically (after the files it vouches for); and a training stage always runs with `resume=True`, so an
interrupted training continues from its last checkpoint. After Ctrl-C, a kill or a crash, the same command
therefore continues where it stopped, and finished stages are never recomputed.

Each stage folder also gets `stage.json` with a fingerprint of everything that determines its result (its own
settings and its dependencies'). A finished stage whose fingerprint differs from the current plan's is an error
rather than a silently reused, stale result: the message names the stage and the first differing setting.
Adding seeds, methods, students or eval splits to a config keeps every finished stage valid.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import gc
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qadistill.config import DataConfig, ModelLoadConfig, PromptConfig
from qadistill.errors import QADistillError
from qadistill.experiments.config import ExperimentConfig, save_resolved
from qadistill.experiments.plan import MODEL_SUBDIR, Plan, Stage, format_plan, plan_experiment
from qadistill.io import atomic_write_json, atomic_write_text

logger = logging.getLogger("qadistill.experiments")

RUN_LOG = "run.log"
LOCK_FILE = ".run.lock"
STAGE_FILE = "stage.json"


@dataclass
class RunOutcome:
    """What `run_experiment` did: stages run and skipped, and the report it wrote (None for a dry run)."""

    run_dir: Path
    plan: Plan
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    summary_csv: Path | None = None
    report_md: Path | None = None
    table: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------- run dir guards


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run dir; a second run in the same folder fails at once (not half-way).

    The lock is an flock, released by the OS when the process ends however it ends, so a killed run never
    leaves a stale lock behind.
    """
    path = run_dir / LOCK_FILE
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise QADistillError(
                f"run folder {run_dir} is in use by another qadistill run ({owner}); wait for it or use another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def run_logging(run_dir: Path) -> Iterator[Path]:
    """Send the `qadistill` loggers' INFO records to `run.log` (appended across resumptions); the console keeps
    warnings and errors only."""
    path = run_dir / RUN_LOG
    package = logging.getLogger("qadistill")
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    saved = (package.level, package.propagate)
    package.addHandler(file_handler)
    package.addHandler(console)
    package.setLevel(logging.INFO)
    package.propagate = False
    try:
        yield path
    finally:
        package.removeHandler(file_handler)
        package.removeHandler(console)
        package.setLevel(saved[0])
        package.propagate = saved[1]
        file_handler.close()


def _first_difference(old: Any, new: Any, path: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key, "<absent>") != new.get(key, "<absent>"):
                return _first_difference(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{path}.{key}")
        return path.lstrip(".")
    return f"{path.lstrip('.') or 'value'} ({old!r} -> {new!r})"


def stage_record(plan: Plan, stage: Stage) -> dict[str, Any]:
    return {"id": stage.id, "kind": stage.kind, "fingerprint": plan.fingerprint(stage), "spec": stage.spec}


def check_finished(plan: Plan, run_dir: Path) -> None:
    """Refuse to reuse a finished stage that was computed with other settings than the plan's."""
    for stage in plan.stages:
        if not stage.done(run_dir):
            continue
        path = stage.folder(run_dir) / STAGE_FILE
        if not path.is_file():
            continue  # finished by hand or by an older version: trust the result file
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if old.get("fingerprint") == plan.fingerprint(stage):
            continue
        if old.get("spec") != stage.spec:
            diff = _first_difference(old.get("spec"), stage.spec)
            why = f"its setting {diff} differs"
        else:
            why = "a stage it depends on was computed with other settings"
        raise QADistillError(
            f"run folder {run_dir}: finished stage {stage.id} was computed with other settings ({why}); "
            f"use a new --out, or delete {stage.folder(run_dir)} to recompute it"
        )


# ------------------------------------------------------------------------------------------------ context


class _Context:
    """Caches shared by stages of one run: prepared datasets, parameter counts and the last evaluated model."""

    def __init__(self, plan: Plan, run_dir: Path, progress: bool = True) -> None:
        self.plan = plan
        self.progress = progress
        self.run_dir = run_dir
        self._data: dict[str, Any] = {}
        self._params: dict[str, int] = {}
        self._model: tuple[str, Any, Any] | None = None

    def data(self, spec: dict[str, Any]):
        from qadistill.data.prepare import prepare_data

        key = json.dumps(spec, sort_keys=True)
        if key not in self._data:
            self._data[key] = prepare_data(DataConfig.model_validate(spec))
        return self._data[key]

    def params(self, model_dir: Path) -> int:
        from qadistill.models import param_count

        key = str(model_dir)
        if key not in self._params:
            self._params[key] = param_count(model_dir)
        return self._params[key]

    def model(self, model_dir: Path, load: dict[str, Any]):
        key = f"{model_dir}|{sorted(load.items())}"
        if self._model is None or self._model[0] != key:
            self.release()
            from qadistill.models import load_model_and_tokenizer

            model, tokenizer = load_model_and_tokenizer(str(model_dir), **ModelLoadConfig(**load).model_dump())
            if _cuda():
                model = model.to("cuda")
            self._model = (key, model, tokenizer)
        return self._model[1], self._model[2]

    def release(self) -> None:
        self._model = None
        gc.collect()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def model_dir(run_dir: Path, stage: Stage) -> Path:
    return stage.folder(run_dir) / MODEL_SUBDIR


def _dep(plan: Plan, stage: Stage, kind: str, role: str | None = None) -> Stage | None:
    for dep_id in stage.deps:
        dep = plan.by_id[dep_id]
        if dep.kind == kind and (role is None or dep.role == role):
            return dep
    return None


def _teacher_stage(plan: Plan, stage: Stage) -> Stage:
    base = stage.id.split("/")[:3]
    return plan.by_id["/".join([*base, "teacher", "train"])]


def _existing_model(run_dir: Path, stage: Stage) -> Path:
    folder = model_dir(run_dir, stage)
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        raise QADistillError(
            f"stage {stage.id} is finished but its model folder {folder} is missing (deleted with keep_models: "
            f"false?); delete {stage.folder(run_dir)} to retrain it"
        )
    return folder


# ------------------------------------------------------------------------------------------------- stages


def _run_prune(ctx: _Context, stage: Stage) -> None:
    from qadistill.io import atomic_dir
    from qadistill.models import load_model_and_tokenizer, prune_layers
    from qadistill.models.loading import write_model_files

    source = _existing_model(ctx.run_dir, ctx.plan.by_id[stage.deps[0]])
    teacher, tokenizer = load_model_and_tokenizer(str(source), dtype="float32")
    student = prune_layers(teacher, stage.spec["prune"])
    del teacher
    with atomic_dir(model_dir(ctx.run_dir, stage)) as tmp:  # config.json (the result file) appears last, at once
        write_model_files(student, tokenizer, tmp)
    logger.info("%s: kept %d layers", stage.id, student.config.num_hidden_layers)


def _run_training(ctx: _Context, stage: Stage) -> dict[str, Any]:
    from qadistill.train.config import DistillJob, FinetuneJob
    from qadistill.train.distill import run_distill
    from qadistill.train.finetune import run_finetune

    spec, plan, run_dir = stage.spec, ctx.plan, ctx.run_dir
    common = {
        "out_dir": stage.folder(run_dir),
        "data": DataConfig.model_validate(spec["data"]),
        "prompt": PromptConfig.model_validate(spec["prompt"]),
        "load": ModelLoadConfig.model_validate(spec["load"]),
        "train": spec["train"],
        "seed": spec["seed"],
        "resume": True,
    }
    init = _dep(plan, stage, "prune")
    if stage.role == "teacher":
        student_model = spec["model"]
    elif init is not None:
        student_model = str(_existing_model(run_dir, init))
    else:
        student_model = spec["student"]
    if stage.kind == "finetune":
        job = FinetuneJob(model=student_model, **common)
    else:
        job = DistillJob(
            teacher=str(_existing_model(run_dir, _teacher_stage(plan, stage))),
            student=student_model,
            teacher_load=ModelLoadConfig.model_validate(spec["teacher_load"]),
            distill=spec["distill"],
            **common,
        )
    if plan.config.launcher:
        return _launch_training(plan.config.launcher, stage.kind, job)
    runner = run_finetune if stage.kind == "finetune" else run_distill
    return runner(job, progress=ctx.progress)


def _launch_training(launcher: str, kind: str, job) -> dict[str, Any]:
    """Run one training stage as `<launcher> -m qadistill <kind> --config job.yaml` (e.g. under accelerate launch)
    and return its train_result.json; the job resumes from its checkpoint like an in-process one."""
    import shlex
    import subprocess

    import yaml

    job_file = Path(job.out_dir) / "launch_job.yaml"
    atomic_write_text(job_file, yaml.safe_dump(job.model_dump(mode="json"), sort_keys=False))
    command = [*shlex.split(launcher), "-m", "qadistill", kind, "--config", str(job_file), "--no-progress"]
    logger.info("launching %s", shlex.join(command))
    try:
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    except OSError as exc:
        raise QADistillError(f"launcher {launcher!r} could not start: {exc.strerror or exc}") from None
    if done.returncode == 130:
        raise KeyboardInterrupt
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise QADistillError(
            f"launched {kind} stage {job.out_dir} failed (exit {done.returncode}): {lines[-1] if lines else ''}"
        )
    return json.loads((Path(job.out_dir) / "train_result.json").read_text(encoding="utf-8"))


def eval_metadata(ctx: _Context, stage: Stage) -> dict[str, Any]:
    """The report's keys for one evaluation, with parameter counts read from the trained models' configs."""
    plan, run_dir = ctx.plan, ctx.run_dir
    trained = plan.by_id[stage.deps[0]]
    teacher = _teacher_stage(plan, stage)
    params = ctx.params(_existing_model(run_dir, trained))
    teacher_dir = model_dir(run_dir, teacher)
    teacher_params = ctx.params(teacher_dir) if (teacher_dir / "config.json").is_file() else stage.teacher_params
    if not teacher_params:
        raise QADistillError(f"stage {stage.id}: the teacher's parameter count is unknown (no model at {teacher_dir})")
    return {
        "model": stage.model,
        "role": stage.role,
        "method": stage.method,
        "dataset": stage.dataset,
        "shots": stage.shots,
        "split": stage.split,
        "seed": stage.seed,
        "params": params,
        "teacher": stage.teacher,
        "teacher_params": teacher_params,
        "teacher_model": next(t.model for t in plan.config.teachers if t.name == stage.teacher),
        "student": stage.student,
        "method_name": stage.method_name,
        "experiment": plan.config.name,
        "stage": stage.id,
        "model_dir": str(model_dir(run_dir, trained)),
        "teacher_source": _teacher_source(trained.folder(run_dir)),
    }


def _teacher_source(train_dir: Path) -> str | None:
    """Whether a distilled student learned from the live teacher or its logit cache (None: not distilled)."""
    result = train_dir / "train_result.json"
    if not result.is_file():
        return None
    try:
        return json.loads(result.read_text(encoding="utf-8")).get("teacher_source")
    except (OSError, ValueError):
        return None


def _run_evaluation(ctx: _Context, stage: Stage) -> dict[str, Any]:
    from qadistill.data.prepare import prompt_format
    from qadistill.data.splits import save_split_ids
    from qadistill.evaluate import evaluate_examples
    from qadistill.generation import GenerationSettings

    spec = stage.spec
    metadata = eval_metadata(ctx, stage)
    data = ctx.data(spec["data"])
    fmt = prompt_format(data, PromptConfig.model_validate(spec["prompt"]))
    examples = data.split(stage.split)
    demo_pool = data.split("demo_pool") if fmt.shots == 1 else []
    model, tokenizer = ctx.model(_existing_model(ctx.run_dir, ctx.plan.by_id[stage.deps[0]]), spec["load"])
    folder = stage.folder(ctx.run_dir)
    save_split_ids(data.splits, folder / "split_ids.json")
    settings = GenerationSettings(spec["generation"]["batch_size"], spec["generation"]["max_new_tokens"])
    return evaluate_examples(
        model,
        tokenizer,
        examples,
        fmt,
        demo_pool,
        stage.seed,
        settings,
        scorer=data.scorer,
        out_dir=folder,
        metadata=metadata,
        progress=False,
    )


def _still_needed(plan: Plan, run_dir: Path, stage_id: str) -> bool:
    return any(stage_id in s.deps and not s.done(run_dir) for s in plan.stages)


def _drop_unneeded_models(ctx: _Context, finished: Stage) -> None:
    """With keep_models false: delete student and pruned-init model folders no unfinished stage needs."""
    for dep_id in (finished.id, *finished.deps):
        dep = ctx.plan.by_id[dep_id]
        if dep.role == "teacher" or dep.kind == "evaluate" or not dep.done(ctx.run_dir):
            continue
        if _still_needed(ctx.plan, ctx.run_dir, dep.id):
            continue
        folder = model_dir(ctx.run_dir, dep)
        if not folder.is_dir():
            continue
        ctx.release()
        if dep.kind == "prune":  # model/config.json is the stage's result file: keep it as the marker
            for item in folder.iterdir():
                if item.name != "config.json":
                    item.unlink() if item.is_file() else shutil.rmtree(item, ignore_errors=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
        logger.info("deleted %s (keep_models: false)", folder)


# ------------------------------------------------------------------------------------------------- driver


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    dry_run: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunOutcome:
    """Run (or, with `dry_run`, only show) every stage of `config` under `out_dir`, then write the report.

    Finished stages are skipped; training stages resume from their checkpoints. The summary table is echoed at
    the end. Returns what was run and where the report is.
    """
    run_dir = Path(out_dir)
    plan = plan_experiment(config, run_dir)
    outcome = RunOutcome(run_dir=run_dir, plan=plan)
    if dry_run:
        echo(format_plan(plan, run_dir if run_dir.is_dir() else None))
        return outcome

    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir), run_logging(run_dir):
        check_finished(plan, run_dir)
        save_resolved(config, run_dir)
        todo = [s for s in plan.stages if not s.done(run_dir)]
        outcome.skipped = [s.id for s in plan.stages if s.done(run_dir)]
        logger.info(
            "run %s in %s: %d stages, %d finished, %d to do", config.name, run_dir, len(plan.stages),
            len(outcome.skipped), len(todo),
        )  # fmt: skip
        ctx = _Context(plan, run_dir, progress)
        with _quiet_transformers():
            _execute(ctx, todo, outcome, progress)
        ctx.release()
        outcome.seconds = time.perf_counter() - started
        logger.info("all %d stages finished in %.1f s; writing the report", len(plan.stages), outcome.seconds)
        _report(outcome, echo)
    return outcome


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Loading weights" / "Writing model shards" bars for each of hundreds of stages: the stage bar is enough."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _execute(ctx: _Context, todo: list[Stage], outcome: RunOutcome, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(ctx.plan.stages), initial=len(outcome.skipped), unit="stage", disable=not progress)
    current: Stage | None = None
    try:
        for stage in todo:
            current = stage
            bar.set_postfix_str(stage.id, refresh=True)
            _run_stage(ctx, stage)
            outcome.ran.append(stage.id)
            bar.update(1)
    except KeyboardInterrupt:
        where = f" during {current.id}" if current is not None else ""
        logger.warning("interrupted%s; run the same command again to continue", where)
        raise
    finally:
        bar.close()


def _run_stage(ctx: _Context, stage: Stage) -> None:
    run_dir = ctx.run_dir
    folder = stage.folder(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / STAGE_FILE, stage_record(ctx.plan, stage))
    logger.info("stage %s (%s) started", stage.id, stage.kind)
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        if stage.kind == "evaluate":
            metrics = _run_evaluation(ctx, stage)
            note = f"EM {metrics.get('exact', float('nan')):.2f}, ROUGE-L {metrics.get('rouge_l', float('nan')):.2f}"
        else:
            ctx.release()
            if stage.kind == "prune":
                _run_prune(ctx, stage)
                note = "pruned"
            else:
                result = _run_training(ctx, stage)
                note = ", ".join(f"{k} {v}" for k, v in result.items() if isinstance(v, int | float))[:200]
            gc.collect()
    except QADistillError as exc:
        logger.error("stage %s failed: %s", stage.id, exc)
        raise QADistillError(f"stage {stage.id}: {exc}") from None
    if not stage.done(run_dir):
        raise QADistillError(f"stage {stage.id} ended without writing its result file {stage.result_path(run_dir)}")
    logger.info(
        "stage %s finished in %.1f s, %.1f s CPU (%s)",
        stage.id,
        time.perf_counter() - t0,
        time.process_time() - cpu0,
        note,
    )
    checkpoint = folder / "checkpoint"
    if stage.is_training and checkpoint.is_dir() and not ctx.plan.config.keep_checkpoints:
        shutil.rmtree(checkpoint, ignore_errors=True)  # only needed to resume an unfinished training
    if not ctx.plan.config.keep_models:
        _drop_unneeded_models(ctx, stage)


def _report(outcome: RunOutcome, echo: Callable[[str], None]) -> None:
    from qadistill.report import summary_table_text, write_report

    paths = write_report(outcome.run_dir)
    outcome.summary_csv, outcome.report_md = paths.summary_csv, paths.report_md
    with paths.summary_csv.open(encoding="utf-8", newline="") as handle:
        outcome.table = summary_table_text(list(csv.DictReader(handle)))
    logger.info("report written to %s", paths.report_md)
    echo(outcome.table)
    echo("")
    echo(f"summary: {paths.summary_csv}")
    echo(f"report:  {paths.report_md}")
    echo(f"log:     {outcome.run_dir / RUN_LOG}")
