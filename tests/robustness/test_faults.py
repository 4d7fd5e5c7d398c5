"""Faults found by trying to break qadistill (issue 16), one section per fault: each test failed on the code before
the fix and passes after it.

Runs use the tiny saved Pythia with the real GPT-NeoX tokenizer and the packaged demo data. A training "killed" in
process raises `Killed` (a BaseException nothing catches) from its step hook after a given step: like SIGKILL it
leaves the checkpoint of the last checkpoint step and no result. Disk-full tests mount a small tmpfs (root only;
otherwise a folder that refuses writes stands in for it).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from robustness_support import (
    EVALUATE_ARGS,
    FINETUNE_ARGS,
    FINETUNE_OVERRIDES,
    assert_one_line_error,
    metrics_without_timing,
    qadistill,
    run_subprocess,
)

from qadistill.errors import QADistillError

LOCK_FILE = ".run.lock"  # the lock `qadistill run` has always taken on its folder

# ------------------------------------------------------------------------------------------------ helpers


class Killed(BaseException):
    """Stands in for SIGKILL inside the test process."""


def kill_training(monkeypatch, step: int, where: str = "") -> None:
    """The next training whose output folder contains `where` dies right after `step` (checkpoint interval 2)."""
    import qadistill.train.finetune as finetune

    real = finetune.run_finetune

    def run_finetune(job, **kwargs):
        def on_step(done: int, _record) -> None:
            if done == step and where in str(job.out_dir):
                raise Killed

        return real(job, on_step=on_step, **kwargs)

    monkeypatch.setattr(finetune, "run_finetune", run_finetune)


def finetune_args(model: Path, out: Path | str, steps: int = 4, *extra: str) -> list[str]:
    return [
        "finetune", "--model", str(model), "--out", str(out), "--max-steps", str(steps), *FINETUNE_ARGS,
        *FINETUNE_OVERRIDES, "train.checkpoint_interval=2", *extra,
    ]  # fmt: skip


def checkpoint_step(out: Path) -> int:
    return json.loads((out / "checkpoint" / "state.json").read_text())["step"]


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".old")))


def grid_config(folder: Path, model: Path, **changes) -> Path:
    """A tiny experiment grid: the teacher, a pruned student fine-tuned with two seeds, evaluated on validation."""
    config = {
        "name": "tiny",
        "teachers": [{"name": "t", "model": str(model), "students": [{"name": "s", "prune": "half"}]}],
        "methods": [{"name": "ft", "kind": "finetune"}],
        "datasets": ["demo-en"],
        "shots": [0],
        "seeds": [0, 1],
        "eval_splits": ["validation"],
        "data": {"splits": {"max_train": 16, "max_validation": 4, "max_test": 4}},
        "prompt": {"max_prompt_tokens": 96},
        "generation": {"batch_size": 4, "max_new_tokens": 2},
        "train": {"max_steps": 4, "batch_size": 2, "lr": 1.0e-3, "checkpoint_interval": 2, "eval_interval": 0,
                  "max_answer_tokens": 8},
    } | changes  # fmt: skip
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


STUDENT_SEED0 = "demo-en/0shot/t/s/ft/seed0"


def summary_rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "report" / "summary.csv").open(encoding="utf-8")))


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory, pythia_dir: Path) -> tuple[Path, Path]:
    """(config, run folder) of one uninterrupted run of the grid; tests copy the folder before changing it."""
    from qadistill.experiments.config import load_config
    from qadistill.study import run_study

    root = tmp_path_factory.mktemp("grid")
    config = grid_config(root, pythia_dir)
    run_study(load_config(config), root / "run", progress=False, echo=lambda _: None)
    return config, root / "run"


def copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(LOCK_FILE))
    return target


def without_paths(folder: Path) -> dict:
    """An evaluation's metrics without wall-clock timing and the paths that name its run folder."""
    return {k: v for k, v in metrics_without_timing(folder).items() if k != "model_dir"}


def mtimes(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------- 1. resume whatever --out's spelling


def test_run_resumes_whatever_the_spelling_of_out_or_where_the_folder_moved(cli, pythia_dir, tmp_path, monkeypatch):
    """Killed during a student's training (its model is inside the run folder), then resumed with `--out` spelled
    absolutely, then killed again and resumed after the folder moved: both continue from the checkpoint."""
    config = grid_config(tmp_path, pythia_dir, seeds=[0])
    monkeypatch.chdir(tmp_path)
    kill_training(monkeypatch, 3, where=STUDENT_SEED0)
    assert cli("run", config, "--out", "k4").code == "traceback"  # Killed
    stage = tmp_path / "k4" / STUDENT_SEED0 / "train"
    assert checkpoint_step(stage) == 2 and not (stage / "train_result.json").exists()

    kill_training(monkeypatch, 4, where=STUDENT_SEED0)  # resumed at 2, killed after 4 (no checkpoint at the end)
    assert cli("run", config, "--out", tmp_path / "k4").code == "traceback"
    assert checkpoint_step(stage) == 2

    (tmp_path / "k4").rename(tmp_path / "moved")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    result = cli("run", config, "--out", "moved")
    assert result.code == 0, result.stderr[-3000:]
    trained = json.loads((tmp_path / "moved" / STUDENT_SEED0 / "train" / "train_result.json").read_text())
    assert trained["resumed"] is True and trained["steps"] == 4


def test_finetune_resumes_whatever_the_spelling_of_out(cli, pythia_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kill_training(monkeypatch, 3)
    assert cli(*finetune_args(pythia_dir, "k4")).code == "traceback"
    assert checkpoint_step(tmp_path / "k4") == 2
    monkeypatch.undo()
    result = cli(*finetune_args(pythia_dir, tmp_path / "k4"), "--resume")
    assert result.code == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["resumed"] is True


def test_a_changed_setting_is_named_with_advice_that_works(cli, pythia_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    kill_training(monkeypatch, 3)
    assert cli(*finetune_args(pythia_dir, out)).code == "traceback"
    monkeypatch.undo()
    refused = cli(*finetune_args(pythia_dir, out, 4, "train.lr=0.002"), "--resume")
    line = assert_one_line_error(refused, f"checkpoint {out / 'checkpoint'}", "train.lr (0.001 -> 0.002)")
    assert "--overwrite" in line and "without --resume" not in line
    started_over = cli(*finetune_args(pythia_dir, out, 4, "train.lr=0.002"), "--overwrite")
    assert started_over.code == 0, started_over.stderr[-3000:]
    assert json.loads(started_over.stdout)["resumed"] is False


def test_a_stage_checkpoint_with_other_settings_names_the_setting(pythia_dir, tmp_path, monkeypatch):
    """`run` with a changed setting and an unfinished stage's checkpoint: the setting is named, and the advice
    (delete the checkpoint) is one `run` can follow (it has no --resume)."""
    from qadistill.experiments.config import load_config
    from qadistill.study import run_study

    config = grid_config(tmp_path, pythia_dir, seeds=[0])
    kill_training(monkeypatch, 3, where=STUDENT_SEED0)
    with pytest.raises(Killed):
        run_study(load_config(config), tmp_path / "run", progress=False, echo=lambda _: None)
    monkeypatch.undo()
    changed = load_config(config, ["methods.ft.train.lr=0.002"])
    with pytest.raises(QADistillError) as err:
        run_study(changed, tmp_path / "run", progress=False, echo=lambda _: None)
    message = str(err.value)
    assert "train.lr (0.001 -> 0.002)" in message and "without --resume" not in message
    assert f"delete {tmp_path / 'run' / STUDENT_SEED0 / 'train' / 'checkpoint'}" in message


# ---------------------------------------------------------------------------------------------- 2. disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[..., tuple[Path, str]]]:
    """A factory of folders on a file system of `kib` KiB (tmpfs, as root; `read_only` mounts it so) -> (folder,
    the OS error expected).

    Where mounting is impossible, a folder that refuses writes stands in (a full disk's failures surface alike).
    """
    mounted: list[Path] = []

    def make(kib: int, read_only: bool = False) -> tuple[Path, str]:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if os.geteuid() == 0:
            options = f"size={kib}k" + (",ro" if read_only else "")
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=False)
            if done.returncode == 0:
                mounted.append(folder)
                return folder, "Read-only file system" if read_only else "No space left on device"
        if os.geteuid() == 0:
            pytest.skip("cannot mount a tmpfs here, and as root no folder refuses writes")
        folder.chmod(0o555)
        return folder, "Permission denied"

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize(
    ("kib", "interval", "failing"),
    [
        (2048, 2, "checkpoint"),  # the weights (safetensors) do not fit
        (20 * 1024, 2, "checkpoint"),  # the weights fit, the optimizer state (torch.save) does not
        (2048, 0, "model"),  # no checkpoint: the final model (transformers' save_pretrained) does not fit
    ],
)
def test_a_full_disk_is_one_line_naming_the_path(cli, pythia_dir, small_disk, kib, interval, failing):
    disk, reason = small_disk(kib)
    out = disk / "run"
    result = cli(*finetune_args(pythia_dir, out, 4, f"train.checkpoint_interval={interval}"))
    line = assert_one_line_error(result, reason)
    if reason == "No space left on device":
        assert line == f"error: cannot write {out / failing}: {reason}"
    assert not (out / "train_result.json").exists()  # no finished marker for a partial run
    assert not (out / failing).exists() or failing == "checkpoint" and checkpoint_step(out) < 4
    assert temps(disk) == []


def test_a_full_disk_keeps_the_previous_checkpoint(cli, pythia_dir, small_disk, tmp_path):
    """Room for one checkpoint, not for the next beside it: the save at step 4 fails, the one of step 2 is whole."""
    size = sum(p.stat().st_size for p in _checkpoint_of(cli, pythia_dir, tmp_path).iterdir())
    disk, reason = small_disk(int(size * 1.5) // 1024)
    if reason != "No space left on device":
        pytest.skip("needs a real full disk")
    out = disk / "run"
    result = cli(*finetune_args(pythia_dir, out, 6))
    assert_one_line_error(result, f"cannot write {out / 'checkpoint'}: No space left on device")
    assert checkpoint_step(out) == 2 and temps(disk) == []
    assert not (out / "model").exists() and not (out / "train_result.json").exists()
    import torch
    from safetensors.torch import load_file

    assert load_file(out / "checkpoint" / "trainable.safetensors")  # the kept checkpoint is whole
    assert torch.load(out / "checkpoint" / "optimizer.pt", weights_only=True)["state"]


def _checkpoint_of(cli, model: Path, tmp_path: Path) -> Path:
    out = tmp_path / "sized"
    assert cli(*finetune_args(model, out, 3)).code == 0
    return out / "checkpoint"


def test_a_full_disk_inside_the_writers_is_a_write_error(small_disk):
    """The library level: safetensors (Rust) and torch.save (a C++ zip writer) hide the OS error in their own
    exception types; `atomic_dir` finds it and leaves no temporary folder."""
    import torch
    from safetensors.torch import save_file

    from qadistill.io import WriteError, atomic_dir

    disk, reason = small_disk(256)
    tensors = {"w": torch.zeros(200_000)}
    for write in (lambda d: save_file(tensors, str(d / "w.safetensors")), lambda d: torch.save(tensors, d / "w.pt")):
        with pytest.raises(WriteError, match=f"^cannot (write|create folder) {disk / 'out'}.*: {reason}$"):
            with atomic_dir(disk / "out") as tmp:
                write(tmp)
        assert list(disk.iterdir()) == []


# ----------------------------------------------------------------------------------------------- 3. YAML bombs


def alias_bomb(levels: int) -> str:
    """A YAML flow list whose aliases expand to 10**levels values ("billion laughs" at 9)."""
    anchors = ["&x0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    anchors += [f"&x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, levels)]
    return f"[{', '.join(anchors)}]"


BOMB = alias_bomb(10)


@pytest.mark.parametrize("where", ["run config", "finetune config", "override"])
def test_a_billion_laughs_config_is_refused_at_once(where, pythia_dir, tmp_path: Path):
    """An alias bomb where settings are free-form (a method's `train` section: before the fix the run grew memory
    without bound while merging it), in a job file, or in an override: one line within seconds (a fresh process,
    memory capped at 3 GiB)."""
    config = tmp_path / "bomb.yaml"
    if where == "run config":
        grid = grid_config(tmp_path, pythia_dir).read_text(encoding="utf-8")  # a later key wins in PyYAML
        config.write_text(f"{grid}methods: [{{name: ft, kind: finetune, train: {{lr: {BOMB}}}}}]\n", encoding="utf-8")
        args = ["run", config, "--dry-run"]
    elif where == "finetune config":
        config.write_text(f"model: {pythia_dir}\nout_dir: {tmp_path / 'out'}\ntrain: {{lr: {BOMB}}}\n")
        args = ["finetune", "--config", config]
    else:
        args = ["run", grid_config(tmp_path, pythia_dir), "--dry-run", f"seeds={alias_bomb(9)}"]
    started = time.monotonic()
    try:
        result = run_subprocess([sys.executable, "-c", _CAPPED, *map(str, args)], timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the bomb was not refused within 60 s")
    assert_one_line_error(result, "aliases expand to more than 100,000 values")
    assert time.monotonic() - started < 30


_CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from qadistill import cli
sys.argv = ["qadistill", *sys.argv[1:]]
cli.main()
"""


def test_the_yaml_loader_measures_expansion_in_milliseconds():
    from qadistill.yaml_safe import load_yaml

    started = time.perf_counter()
    with pytest.raises(QADistillError, match="^cfg: refused: its aliases expand to more than 100,000 values"):
        load_yaml(BOMB, "cfg")
    assert time.perf_counter() - started < 0.5
    with pytest.raises(QADistillError, match="an alias refers to a value that contains it"):
        load_yaml("a: &a [1, *a]", "cfg")
    # ordinary anchors still work
    assert load_yaml("base: &b {lr: 0.1}\nrun: *b\nother: [*b, *b]", "cfg") == {
        "base": {"lr": 0.1},
        "run": {"lr": 0.1},
        "other": [{"lr": 0.1}, {"lr": 0.1}],
    }


# --------------------------------------------------------------------------------------- 4. corrupt results


def test_a_corrupt_result_makes_its_stage_run_again(finished_grid, tmp_path: Path, capsys):
    from qadistill.experiments.config import load_config
    from qadistill.study import run_study

    config, reference = finished_grid
    run = copy_run(reference, tmp_path / "run")
    damaged = run / STUDENT_SEED0 / "eval" / "validation" / "metrics.json"
    damaged.write_text('{"model": "s", "exact": 12', encoding="utf-8")
    outcome = run_study(load_config(config), run, progress=False, echo=lambda _: None)
    assert outcome.ran == [f"{STUDENT_SEED0}/eval/validation"]
    warned = capsys.readouterr().err  # the run's console: warnings and errors
    assert (
        f"WARNING qadistill.experiments: stage {STUDENT_SEED0}/eval/validation: its result {damaged} is damaged"
        in warned
    )
    assert "running the stage again (old file kept as metrics.json.corrupt)" in warned
    rerun, kept = (without_paths(r / STUDENT_SEED0 / "eval" / "validation") for r in (run, reference))
    assert rerun == kept
    assert summary_rows(run) == summary_rows(reference)  # both seeds again, not one fewer
    assert {r["n_seeds"] for r in summary_rows(run) if r["role"] == "student"} == {"2"}


def test_a_corrupt_training_result_retrains_the_same_model(finished_grid, tmp_path: Path):
    from qadistill.experiments.config import load_config
    from qadistill.study import run_study

    config, reference = finished_grid
    run = copy_run(reference, tmp_path / "run")
    (run / STUDENT_SEED0 / "train" / "train_result.json").write_text("[]", encoding="utf-8")
    outcome = run_study(load_config(config), run, progress=False, echo=lambda _: None)
    assert outcome.ran == [f"{STUDENT_SEED0}/train"]
    weights = [r / STUDENT_SEED0 / "train" / "model" / "model.safetensors" for r in (reference, run)]
    assert weights[0].read_bytes() == weights[1].read_bytes()


# ------------------------------------------------------------------------------------ 5. unwritable --out


@pytest.mark.parametrize("where", ["proc", "under-a-file"])
def test_an_unwritable_run_folder_is_one_line(cli, pythia_dir, tmp_path: Path, where: str):
    config = grid_config(tmp_path, pythia_dir)
    if where == "proc":
        out = Path("/proc/qadistill-run")
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    assert_one_line_error(cli("run", config, "--out", out), str(out))


@pytest.mark.parametrize("command", ["run", "finetune", "evaluate"])
def test_a_read_only_file_system_is_one_line(cli, pythia_dir, small_disk, tmp_path: Path, command: str):
    disk, reason = small_disk(1024, read_only=True)
    args = {
        "run": ["run", grid_config(tmp_path, pythia_dir), "--out", disk],
        "finetune": finetune_args(pythia_dir, disk, 1),
        "evaluate": ["evaluate", "--model", pythia_dir, *EVALUATE_ARGS, "--out", disk],
    }[command]
    assert_one_line_error(cli(*args), f"cannot write {disk}/", reason)


# --------------------------------------------------------------------- 6. standalone training resumes or refuses


def test_the_same_finetune_command_again_resumes(cli, pythia_dir, tmp_path: Path, monkeypatch):
    out = tmp_path / "run"
    kill_training(monkeypatch, 3)
    assert cli(*finetune_args(pythia_dir, out, 6)).code == "traceback"
    monkeypatch.undo()
    first_steps = (out / "train_log.jsonl").read_text().splitlines()[:2]
    again = cli(*finetune_args(pythia_dir, out, 6))  # no --resume
    assert again.code == 0, again.stderr[-3000:]
    assert again.lines == [f"the checkpoint {out / 'checkpoint'} (step 2) has the same settings: training resumes "
                           "from it (--overwrite starts over)"]  # fmt: skip
    result = json.loads(again.stdout)
    assert result["resumed"] is True and result["steps"] == 6
    assert (out / "train_log.jsonl").read_text().splitlines()[:2] == first_steps  # steps 1-2 were not redone

    shown = cli(*finetune_args(pythia_dir, out, 6))  # finished: the result again, nothing retrained
    assert shown.code == 0 and json.loads(shown.stdout) == result
    assert "finished run" in shown.stderr


def test_finetune_refuses_to_overwrite_a_finished_run_with_other_settings(cli, pythia_dir, tmp_path: Path):
    out = tmp_path / "run"
    assert cli(*finetune_args(pythia_dir, out, 2)).code == 0
    before = (out / "model" / "model.safetensors").read_bytes()
    refused = cli(*finetune_args(pythia_dir, out, 2, "--seed", "1"))
    assert_one_line_error(refused, f"the finished run in {out}", "seed (0 -> 1)", "--overwrite")
    assert (out / "model" / "model.safetensors").read_bytes() == before
    assert_one_line_error(cli(*finetune_args(pythia_dir, out, 2), "--resume", "--overwrite"), "exclude each other")


# ----------------------------------------------------------------------------------- 7. one writer per folder


def test_a_second_training_into_the_same_folder_fails_at_once(cli, pythia_dir, tmp_path: Path):
    """The lock `qadistill run` takes (an flock on `.run.lock`), held here by another open file: finetune refuses."""
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with (out / LOCK_FILE).open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli(*finetune_args(pythia_dir, out, 2))
    assert_one_line_error(result, f"output folder {out} is in use by another", "use another --out")
    assert not (out / "train_log.jsonl").exists()


def test_a_training_holds_the_lock_against_a_run(cli, pythia_dir, tmp_path: Path, monkeypatch):
    """While `finetune` trains, `qadistill run` into the same folder is refused (the same lock, both ways)."""
    from qadistill.experiments.config import load_config
    from qadistill.study import run_study

    out = tmp_path / "run"
    seen: list[str] = []
    import qadistill.train.finetune as finetune

    real = finetune.run_finetune

    def run_finetune(job, **kwargs):
        def on_step(step: int, _record) -> None:
            if step == 1:
                with pytest.raises(QADistillError, match="is in use by another qadistill process") as err:
                    run_study(load_config(grid_config(tmp_path, pythia_dir)), out, echo=lambda _: None)
                seen.append(str(err.value))

        return real(job, on_step=on_step, **kwargs)

    monkeypatch.setattr(finetune, "run_finetune", run_finetune)
    assert cli(*finetune_args(pythia_dir, out, 2)).code == 0
    assert len(seen) == 1 and f"pid {os.getpid()}" in seen[0]


# ------------------------------------------------------------------------------------ 8. nan_policy: skip


def test_max_skipped_fraction_is_a_validated_setting():
    from pydantic import ValidationError

    from qadistill.train.config import TrainConfig

    assert TrainConfig().max_skipped_fraction == 0.1
    assert TrainConfig(max_skipped_fraction=0.5).max_skipped_fraction == 0.5
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="max_skipped_fraction"):
            TrainConfig(max_skipped_fraction=bad)


def test_skipping_most_steps_fails_with_a_warning_per_skip(cli, pythia_dir, tmp_path: Path, caplog):
    """An lr of 1e30 blows the weights up after step 1, so every later step is non-finite and skipped. Expected:
    a WARNING naming each skipped step, and once more than `train.max_skipped_fraction` of the steps so far
    (after at least 10) were skipped, a one-line error naming the skipped count and the setting, exit 2, no model."""
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="qadistill"):
        result = cli(*finetune_args(pythia_dir, out, 20, "train.lr=1e30", "train.nan_policy=skip"))
    skips = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skips) >= 9, skips  # steps 2..10 at least, each named
    assert_one_line_error(result, "skipped", "train.max_skipped_fraction")
    assert not (out / "model").exists() and not (out / "train_result.json").exists()


# ----------------------------------------------------------------------------------------------- 10. leftovers


def test_a_rerun_removes_leftovers_of_killed_writes(finished_grid, tmp_path: Path):
    from qadistill.experiments.config import load_config
    from qadistill.study import run_study

    config, reference = finished_grid
    run = copy_run(reference, tmp_path / "run")
    stage = run / STUDENT_SEED0 / "train"
    (stage / ".model.k1ll3d_x.tmp").mkdir()  # a model copy a kill during its save left behind
    (stage / ".model.k1ll3d_x.tmp" / "model.safetensors").write_bytes(b"\0" * 1000)
    (stage / ".train_result.json.a1b2c3d4.tmp").write_text("{")
    (stage / "checkpoint").mkdir()  # a kill right after the training finished, before its checkpoint went
    (stage / "checkpoint" / "state.json").write_text("{}")
    (run / ".config.resolved.yaml.zz99zz99.tmp").write_text("x")
    (run / ".notes.old").write_text("the user's own file")  # not an output of the run: kept
    before = mtimes(reference)
    outcome = run_study(load_config(config), run, progress=False, echo=lambda _: None)
    assert outcome.ran == []
    assert temps(run) == [".notes.old"] and not (stage / "checkpoint").exists()
    after = mtimes(run)
    assert all(after[k] == v for k, v in before.items() if k.endswith(("metrics.json", "train_result.json")))


def test_finetune_removes_leftovers_in_its_folder(cli, pythia_dir, tmp_path: Path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".model.abc123_x.tmp").mkdir()
    (out / ".checkpoint.zzz.tmp").mkdir()
    (out / ".job.json.q1w2e3r4.tmp").write_text("{")
    (out / ".mine.tmp").write_text("not ours")
    assert cli(*finetune_args(pythia_dir, out, 1)).code == 0
    assert temps(out) == [".mine.tmp"]


# ---------------------------------------------------------------------------------------------- minor items


def test_sigterm_during_an_evaluation_stage_says_so_and_exits_130(pythia_dir, tmp_path: Path):
    """`kill` (SIGTERM) while `run` evaluates: a message naming the stage, how to continue, and status 130."""
    launcher = tmp_path / "launcher.py"
    launcher.write_text(_SIGTERM_IN_EVAL, encoding="utf-8")
    config = grid_config(tmp_path, pythia_dir, seeds=[0])
    result = run_subprocess([sys.executable, launcher, "run", config, "--out", tmp_path / "run"])
    assert result.code == 130, (result.code, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    assert any("interrupted during demo-en/0shot/t/teacher/seed0/eval/validation; run the same command again" in line
               for line in result.lines), result.stderr  # fmt: skip
    assert result.lines[-1] == "interrupted"
    resumed = qadistill("run", config, "--out", tmp_path / "run")
    assert resumed.code == 0, resumed.stderr[-3000:]


_SIGTERM_IN_EVAL = """
import os, signal, sys
import qadistill.evaluate as evaluate
from qadistill import cli

real = evaluate.evaluate_examples

def evaluate_examples(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)

evaluate.evaluate_examples = evaluate_examples
sys.argv = ["qadistill", *sys.argv[1:]]
cli.main()
"""


def test_model_weights_are_as_readable_as_the_other_files(cli, pythia_dir, tmp_path: Path):
    umask = os.umask(0)
    os.umask(umask)
    out = tmp_path / "run"
    assert cli(*finetune_args(pythia_dir, out, 1)).code == 0
    modes = {p.name: p.stat().st_mode & 0o777 for p in (out / "model").iterdir()}
    assert modes["model.safetensors"] == 0o666 & ~umask, modes
    assert set(modes.values()) == {0o666 & ~umask}


def test_a_long_answer_is_stemmed_once_not_once_per_gold(monkeypatch):
    from rouge_score import rouge_scorer, tokenize

    from qadistill.metrics import score_answer

    calls: list[int] = []
    real = tokenize.tokenize

    def counting(text, stemmer):
        calls.append(len(text))
        return real(text, stemmer)

    monkeypatch.setattr(tokenize, "tokenize", counting)
    prediction = "the rivers flowed northwards past the quarries of Normandy " * 2000
    golds = ["Normandy", "the quarries", "rivers flowing north", "quarry", "northwards"]
    scores = score_answer(prediction, golds, dataset="squad_v2")
    assert sum(1 for n in calls if n == len(prediction)) == 1  # the prediction once, each gold once
    monkeypatch.setattr(tokenize, "tokenize", real)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    assert scores["rouge_l"] == max(scorer.score(g, prediction)["rougeL"].fmeasure for g in golds)


def test_an_unsafe_pickle_is_refused_in_one_short_line(cli, pythia_dir: Path, tmp_path: Path):
    import argparse
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "unsafe"
    shutil.copytree(pythia_dir, folder)
    state = load_file(folder / "model.safetensors")
    torch.save({**state, "extra": argparse.Namespace(a=1)}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    result = cli("evaluate", "--model", folder, *EVALUATE_ARGS, "--out", tmp_path / "eval", "--allow-pickle")
    line = assert_one_line_error(result, folder, "argparse.Namespace", "safetensors")
    assert "weights_only" not in line and len(line) - len(str(folder)) < 200


def test_the_dry_run_estimate_counts_the_questions_in_data_dir(tmp_path: Path):
    from qadistill.experiments.config import load_config
    from qadistill.experiments.plan import eval_questions

    data = tmp_path / "data" / "squad_v2"
    data.mkdir(parents=True)
    articles = [
        {"title": f"A{a}", "paragraphs": [{"context": "x", "qas": [
            {"id": f"q{a}-{q}", "question": "?", "answers": [], "is_impossible": True} for q in range(10)
        ]}]}
        for a in range(10)
    ]  # fmt: skip
    (data / "dev-v2.0.labelled-half.json").write_text(json.dumps({"version": "v2.0", "data": articles}))
    config = grid_config(tmp_path, tmp_path, datasets=["squad_v2"], data={"data_dir": str(tmp_path / "data")})
    assert eval_questions(load_config(config), "squad_v2", "validation") == 10  # 10% of the 100 questions there
