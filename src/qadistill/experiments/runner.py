"""Execute an experiment plan stage by stage, resumably, and finish with the report.

Resumption rests on three rules: a stage is finished exactly when its result file exists; every result file is
written atomically (after the files it vouches for); and a training stage always runs with `resume=True`, so an
interrupted training continues from its last checkpoint. After Ctrl-C, a kill or a crash, the same command
therefore continues where it stopped, and finished stages are never recomputed.

Each stage folder also gets `stage.json` with a fingerprint of everything that determines its result (its own
settings and its dependencies'). A finished stage whose fingerprint differs from the current plan's is an error
rather than a silently reused, stale result: the message names the stage and the first differing setting.
Adding seeds, methods, students or eval splits to a config keeps every finished stage valid.

Where stages run is the config's `executor`: locally, `_execute` runs them in plan order in this process; on
SLURM, `executors.submit_plan` submits each as a job running `run_stage_job`, which runs the same `_run_stage`.
Either way a stage runs under its own lock (`stage_lock`), so no two processes ever compute the same stage.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qadistill.config import DataConfig, ModelLoadConfig, PromptConfig, first_difference
from qadistill.errors import QADistillError
from qadistill.experiments.config import RESOLVED_CONFIG, ExperimentConfig, config_from_dict, save_resolved
from qadistill.experiments.executors import job_launcher, refuse_active_jobs, submit_plan
from qadistill.experiments.plan import (
    INIT_KINDS,
    MODEL_SUBDIR,
    Plan,
    Stage,
    format_plan,
    plan_experiment,
)
from qadistill.io import atomic_write_json, atomic_write_text, ensure_dir, remove_stale_temps, run_lock
from qadistill.results import parse_result
from qadistill.tracking import TrackingConfig, check_installed, log_evaluation

logger = logging.getLogger("qadistill.experiments")

RUN_LOG = "run.log"
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
    submitted: dict[str, str] = field(default_factory=dict)  # SLURM executor: stage id -> job id of new jobs
    complete: bool = False


# ------------------------------------------------------------------------------------------- run dir guards


@contextlib.contextmanager
def stage_lock(stage: Stage, run_dir: Path) -> Iterator[None]:
    """Hold an exclusive flock on one stage folder while it is computed; a second process fails at once (and
    `qadistill status` sees the stage as running)."""
    path = stage.lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise QADistillError(f"stage {stage.id} is being computed by another process (locked {path})") from None
        yield


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


LOGGED_RESULT = ("steps", "kept_step", "skipped_steps", "final_train_loss", "first_val_ce", "final_val_ce", "seconds")
"""What run.log says of a finished training (train_result.json has the rest)."""


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
            diff = first_difference(old.get("spec"), stage.spec)
            why = f"its setting {diff} differs"
        else:
            why = "a stage it depends on was computed with other settings"
        raise QADistillError(
            f"run folder {run_dir}: finished stage {stage.id} was computed with other settings ({why}); "
            f"use a new --out, or delete {stage.folder(run_dir)} to recompute it"
        )


def remove_leftovers(plan: Plan, run_dir: Path) -> None:
    """What a killed run left behind: temporary files and folders of interrupted writes (a model copy can be as
    large as the model), and the checkpoints of trainings that finished just before the kill."""
    removed = remove_stale_temps(run_dir, {RESOLVED_CONFIG})  # the run folder itself may hold the user's files
    for folder in sorted({run_dir / "report", *(stage.folder(run_dir) for stage in plan.stages)}):
        removed += remove_stale_temps(folder)
    if not plan.config.keep_checkpoints:
        for stage in plan.stages:
            checkpoint = stage.folder(run_dir) / "checkpoint"
            if stage.is_training and stage.done(run_dir) and checkpoint.is_dir():
                shutil.rmtree(checkpoint, ignore_errors=True)
                removed.append(checkpoint)
    for path in removed:
        logger.info("removed %s (left behind by an interrupted run)", path)


def _result_problem(stage: Stage, run_dir: Path) -> str | None:
    """Why a finished stage's result file cannot be used (None: it can): what the report or a later stage would
    otherwise drop silently or trip over."""
    path = stage.result_path(run_dir)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"unreadable JSON: {' '.join(str(exc).split())[:120]}"
    if not isinstance(doc, dict):
        return "not a JSON object"
    if stage.kind == "evaluate":
        try:
            parse_result(doc, path)
        except ValueError as exc:
            return str(exc)
    return None


def rerun_corrupt_results(plan: Plan, run_dir: Path) -> None:
    """A finished stage whose result file is damaged runs again (its file is kept aside as `*.corrupt`), rather
    than vanishing from the summary or breaking a later stage."""
    for stage in plan.stages:
        if not stage.done(run_dir) or (problem := _result_problem(stage, run_dir)) is None:
            continue
        path = stage.result_path(run_dir)
        kept = path.with_name(path.name + ".corrupt")
        path.replace(kept)
        logger.warning("stage %s: its result %s is damaged (%s); running the stage again (old file kept as %s)",
                       stage.id, path, problem, kept.name)  # fmt: skip


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

    def params(self, model_dir: str | Path) -> int:
        from qadistill.models import param_count

        key = str(model_dir)
        if key not in self._params:
            self._params[key] = param_count(model_dir)
        return self._params[key]

    def model(self, model_dir: str | Path, load: dict[str, Any]):
        key = f"{model_dir}|{sorted(load.items())}"
        if self._model is None or self._model[0] != key:
            self.release()
            from qadistill.models import load_model_and_tokenizer

            model, tokenizer = load_model_and_tokenizer(str(model_dir), **ModelLoadConfig(**load).model_dump())
            if _cuda():
                model = model.to("cuda")  # type: ignore[arg-type]  # transformers#38052: @wraps(Module.to) hides self
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


def _start(plan: Plan, stage: Stage) -> Stage | None:
    """The stage whose model a training starts from: the last of its student's preparation stages, if any."""
    return next((plan.by_id[d] for d in stage.deps if plan.by_id[d].kind in INIT_KINDS), None)


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
    """The teacher with only the chosen layers; `model/pruning.json` records the choice and every layer's score."""
    from qadistill.config import PruneConfig
    from qadistill.io import atomic_dir
    from qadistill.models import load_model_and_tokenizer, param_count, prune_layers
    from qadistill.models.card import pruning_facts, write_card
    from qadistill.models.loading import write_model_files
    from qadistill.train.calibration import choose_layers

    spec = stage.spec
    source = _existing_model(ctx.run_dir, ctx.plan.by_id[stage.deps[0]])
    teacher, tokenizer = load_model_and_tokenizer(str(source), dtype="float32")
    prune = PruneConfig.model_validate(spec["prune"]) if isinstance(spec["prune"], dict) else spec["prune"]
    calibration = {}
    if "data" in spec:  # a measured selection: calibration prompts of the training split
        calibration = {
            "data": ctx.data(spec["data"]),
            "prompt": PromptConfig.model_validate(spec["prompt"]),
            "seed": spec["seed"],
            "max_answer_tokens": spec["max_answer_tokens"],
        }
    if calibration and _cuda():
        teacher = teacher.to("cuda")  # type: ignore[arg-type]  # transformers#38052: @wraps(Module.to) hides self
    choice = choose_layers(teacher, tokenizer, prune, **calibration)
    student = prune_layers(teacher, choice.kept).to("cpu")  # type: ignore[arg-type]  # as above
    layers, source_params = teacher.config.num_hidden_layers, param_count(teacher)
    del teacher
    with atomic_dir(model_dir(ctx.run_dir, stage)) as tmp:  # config.json (the result file) appears last, at once
        atomic_write_json(tmp / "pruning.json", choice.to_json())
        write_model_files(student, tokenizer, tmp)
        card = pruning_facts(str(source), choice.kept, layers, param_count(student), source_params)
        write_card(tmp, card)
    logger.info(
        "%s: kept layers %s of %d (%s; scores in model/pruning.json)",
        stage.id,
        choice.kept,
        choice.num_layers,
        choice.method,
    )


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
        "tracking": stage_tracking(ctx, stage),
    }
    start = _start(plan, stage)
    if stage.role == "teacher":
        model = spec["model"]
    elif start is not None:
        model = str(_existing_model(run_dir, start))
    else:
        model = spec["student"]
    fine_tuning = stage.kind in ("finetune", "sft_init")
    if fine_tuning:
        job: FinetuneJob | DistillJob = FinetuneJob(model=model, **common)
    else:  # distill, heal
        job = DistillJob(
            teacher=str(_existing_model(run_dir, _teacher_stage(plan, stage))),
            student=model,
            teacher_load=ModelLoadConfig.model_validate(spec["teacher_load"]),
            distill=spec["distill"],
            **common,
        )
    command = "finetune" if fine_tuning else "distill"
    if plan.config.launcher:
        return _launch_training(plan.config.launcher, command, job)
    if isinstance(job, FinetuneJob):
        return run_finetune(job, progress=ctx.progress)
    return run_distill(job, progress=ctx.progress)


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
    teacher = _teacher_stage(plan, stage)
    params = ctx.params(_evaluated_model(ctx, stage))
    teacher_dir = model_dir(run_dir, teacher)
    teacher_params = ctx.params(teacher_dir) if (teacher_dir / "config.json").is_file() else stage.teacher_params
    if not teacher_params:
        raise QADistillError(f"stage {stage.id}: the teacher's parameter count is unknown (no model at {teacher_dir})")
    nominal, teacher_nominal = nominal_sizes(plan, stage)
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
        "nominal_params": nominal,
        "teacher_nominal_params": teacher_nominal,
        "teacher_model": next(t.model for t in plan.config.teachers if t.name == stage.teacher),
        "student": stage.student,
        "method_name": stage.method_name,
        "experiment": plan.config.name,
        "stage": stage.id,
        "model_dir": str(_evaluated_model(ctx, stage)),
        "teacher_source": _teacher_source(plan.by_id[stage.deps[0]].folder(run_dir)) if stage.deps else None,
    }


def _evaluated_model(ctx: _Context, stage: Stage) -> str | Path:
    """The model an evaluation scores: the trained stage's folder, or (untuned baseline) the base model's spec."""
    if not stage.deps:
        return stage.spec["model"]
    return _existing_model(ctx.run_dir, ctx.plan.by_id[stage.deps[0]])


def nominal_sizes(plan: Plan, stage: Stage) -> tuple[int | None, int | None]:
    """Nominal sizes (the size in a registry model's name) of the evaluated model and of its teacher, for the
    report's claim by nominal sizes; None for a pruned student or a model outside the registry."""
    from qadistill.models import nominal_params

    teacher = next(t for t in plan.config.teachers if t.name == stage.teacher)
    own: str | None = teacher.model
    if stage.role == "student":
        own = next((s.model for s in teacher.students if s.name == stage.student), None)
    return nominal_params(own), nominal_params(teacher.model)


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
    from qadistill.config import GenerationConfig
    from qadistill.data.splits import save_split_ids
    from qadistill.evaluate import EvalQuestions, evaluate_examples

    spec = stage.spec
    metadata = eval_metadata(ctx, stage)
    if stage.split is None:  # the plan gives every evaluation stage its split
        raise QADistillError(f"evaluation stage {stage.id} names no split")
    data = ctx.data(spec["data"])
    questions = EvalQuestions.from_data(data, stage.split, PromptConfig.model_validate(spec["prompt"]), stage.seed)
    model, tokenizer = ctx.model(_evaluated_model(ctx, stage), spec["load"])
    folder = stage.folder(ctx.run_dir)
    save_split_ids(data.splits, folder / "split_ids.json")
    settings = GenerationConfig.model_validate(spec["generation"])
    metrics = evaluate_examples(
        model, tokenizer, questions, settings, out_dir=folder, metadata=metadata, progress=False
    )
    log_evaluation(stage_tracking(ctx, stage), folder, stage.split or "eval", metrics)
    _card_result(ctx, stage, metrics)
    return metrics


def _card_result(ctx: _Context, stage: Stage, metrics: dict[str, Any]) -> None:
    """Add an evaluation's metrics to the evaluated model's card, with the command that reproduces them (not for
    the untuned baseline: its model is not one of the run's)."""
    from qadistill.models.card import add_evaluation

    if not stage.deps:
        return

    keys = ("exact", "f1", "rouge_l", "total", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")
    command = f"qadistill run {ctx.run_dir / RESOLVED_CONFIG} --out {ctx.run_dir}  # stage {stage.id}"
    result: dict[str, Any] = {"dataset": stage.dataset, "split": stage.split, "shots": stage.shots, "seed": stage.seed}
    result |= {"metrics": {k: metrics[k] for k in keys if k in metrics}, "command": command}
    add_evaluation(model_dir(ctx.run_dir, ctx.plan.by_id[stage.deps[0]]), result)


def stage_tracking(ctx: _Context, stage: Stage) -> TrackingConfig:
    """The experiment's tracking settings for one stage: a run of its own, grouped by the experiment's name and
    tagged with what the report compares (the plan does not hash them: tracking never changes a result)."""
    cfg, name = ctx.plan.config.tracking, ctx.plan.config.name
    tags = {
        "experiment": name,
        "stage": stage.kind,
        "teacher": stage.teacher,
        "student": stage.student or stage.model,
        "method": stage.method,
        "dataset": stage.dataset,
        "shots": str(stage.shots),
        "seed": str(stage.seed),
    }
    if stage.split:
        tags["split"] = stage.split
    return cfg.model_copy(
        update={
            "run_name": f"{cfg.run_name or name}/{stage.id}",
            "tags": {**tags, **cfg.tags},
            "dir": cfg.dir or ctx.run_dir / "tracking",
        }
    )


def _still_needed(plan: Plan, run_dir: Path, stage_id: str) -> bool:
    return any(stage_id in s.deps and not s.done(run_dir) for s in plan.stages)


def _drop_unneeded_models(ctx: _Context, finished: Stage) -> None:
    """With keep_models false: delete student and pruned-init model folders no unfinished stage needs."""
    for dep_id in (finished.id, *finished.deps):
        dep = ctx.plan.by_id[dep_id]
        if dep.role != "student" or dep.kind == "evaluate" or not dep.done(ctx.run_dir):
            continue
        if _still_needed(ctx.plan, ctx.run_dir, dep.id):
            continue
        folder = model_dir(ctx.run_dir, dep)
        if not folder.is_dir():
            continue
        ctx.release()
        if dep.kind == "prune":  # model/config.json is the stage's result file: keep it as the marker (and the choice)
            for item in folder.iterdir():
                if item.name not in ("config.json", "pruning.json"):
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
    """Run (or, with `dry_run`, only show; with a SLURM executor, submit) every stage of `config` under `out_dir`.

    Finished stages are skipped; training stages resume from their checkpoints. Returns what was run;
    `outcome.complete` says whether every stage is finished (then `qadistill.study` writes the report).
    """
    run_dir = Path(out_dir)
    check_installed(config.tracking.report_to)  # before hours of work, not at the first training
    plan = plan_experiment(config, run_dir)
    outcome = RunOutcome(run_dir=run_dir, plan=plan)
    if dry_run:
        echo(format_plan(plan, run_dir if run_dir.is_dir() else None))
        return outcome

    started = time.perf_counter()
    ensure_dir(run_dir)
    with run_lock(run_dir), run_logging(run_dir):
        remove_leftovers(plan, run_dir)
        rerun_corrupt_results(plan, run_dir)
        check_finished(plan, run_dir)
        todo = [s for s in plan.stages if not s.done(run_dir)]
        outcome.skipped = [s.id for s in plan.stages if s.done(run_dir)]
        logger.info(
            "run %s in %s: %d stages, %d finished, %d to do", config.name, run_dir, len(plan.stages),
            len(outcome.skipped), len(todo),
        )  # fmt: skip
        if todo and config.executor.kind != "local":  # saves the resolved config once its checks passed
            outcome.submitted = submit_plan(plan, run_dir, run_stage_job, echo)
            return outcome
        if todo:
            refuse_active_jobs(plan, run_dir)
        save_resolved(config, run_dir)
        ctx = _Context(plan, run_dir, progress)
        with _quiet_transformers(), terminate_as_interrupt():
            _execute(ctx, todo, outcome, progress)
        ctx.release()
        outcome.seconds = time.perf_counter() - started
        outcome.complete = True
        logger.info("all %d stages finished in %.1f s", len(plan.stages), outcome.seconds)
    return outcome


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler's time limit) stops a run like Ctrl-C: the runner says which stage was
    interrupted and that the same command continues, instead of dying silently with status 143. Training stages
    install their own handler (checkpoint first) for their duration."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
            with stage_lock(stage, ctx.run_dir):
                _run_stage(ctx, stage)
            outcome.ran.append(stage.id)
            bar.update(1)
    except KeyboardInterrupt:
        where = f" during {current.id}" if current is not None else ""
        logger.warning("interrupted%s; run the same command again to continue", where)
        raise
    finally:
        bar.close()


def run_stage_job(config_doc: dict[str, Any], run_dir: str, stage_id: str) -> str:
    """Run one stage in a process of its own (a SLURM job): `_run_stage` under the stage's lock, after checking
    that its dependencies finished; a stage already finished is left alone. Returns the stage id."""
    folder = Path(run_dir)
    config = config_from_dict(config_doc, source=f"config of {folder}")
    plan = plan_experiment(config, folder)
    if stage_id not in plan.by_id:
        raise QADistillError(f"stage {stage_id} is not in the plan of {folder}")
    stage = plan.by_id[stage_id]
    plan.config = config.model_copy(update={"launcher": job_launcher(config, stage)})
    with run_logging(folder), stage_lock(stage, folder):
        if stage.done(folder):
            logger.info("stage %s is already finished", stage_id)
            return stage_id
        missing = [d for d in stage.deps if not plan.by_id[d].done(folder)]
        if missing:
            raise QADistillError(f"stage {stage_id} cannot start: stage {missing[0]}, which it needs, has not finished")
        ctx = _Context(plan, folder, progress=False)
        with _quiet_transformers():
            _run_stage(ctx, stage)
        ctx.release()
    return stage_id


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
                logged = [k for k in LOGGED_RESULT if isinstance(result.get(k), int | float)]
                note = ", ".join(f"{k} {result[k]:.4g}" for k in logged)
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
    if stage.is_training and not ctx.plan.config.keep_checkpoints:
        for leftover in (folder / "checkpoint", folder / "best"):  # only needed to resume an unfinished training
            shutil.rmtree(leftover, ignore_errors=True)
    if not ctx.plan.config.keep_models:
        _drop_unneeded_models(ctx, stage)
