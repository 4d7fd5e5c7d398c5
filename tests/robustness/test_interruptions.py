"""Interruptions: SIGINT / SIGTERM save a checkpoint and exit 130 with a message; SIGKILL loses at most the work since
the last checkpoint; results and checkpoints are written atomically, so leftovers of a killed write are never read;
a resumed run ends with the same model and the same evaluation as an uninterrupted one (CPU, fixed seed).

This is the command-line level of `tests/integration/test_resume.py` (bitwise resume of the library loops, LoRA and
distillation included) and `tests/integration/test_run_resume.py` (`qadistill run` killed and rerun): here
`qadistill finetune` is stopped by real signals, resumed with `--resume`, and its model scored by `qadistill evaluate`.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from robustness_support import (
    CONSOLE_SCRIPT,
    EVALUATE_ARGS,
    FINETUNE_ARGS,
    FINETUNE_OVERRIDES,
    OFFLINE_ENV,
    assert_one_line_error,
    metrics_without_timing,
    qadistill,
    run_subprocess,
)
from safetensors.torch import load_file

from qadistill import io as qio
from qadistill.io import WriteError, atomic_dir, atomic_write_json, atomic_write_text

# Runs `qadistill` with a signal sent to itself after a given training step ($RB_SIGNAL at $RB_STEP): the same
# code path as a signal from outside, at a deterministic point.
LAUNCHER = """
import os, signal, sys
import qadistill.train.finetune as finetune
from qadistill import cli

name, at = os.environ["RB_SIGNAL"], int(os.environ["RB_STEP"])
real = finetune.run_finetune

def run_finetune(job, **kwargs):
    def on_step(step, record):
        if step == at:
            os.kill(os.getpid(), getattr(signal, name))
    return real(job, on_step=on_step, **kwargs)

finetune.run_finetune = run_finetune
sys.argv = ["qadistill", *sys.argv[1:]]
cli.main()
"""


def finetune_args(model: Path, out: Path, max_steps: int, *extra: str) -> list[str]:
    return [
        "finetune",
        "--model",
        str(model),
        "--out",
        str(out),
        "--max-steps",
        str(max_steps),
        *FINETUNE_ARGS,
        *FINETUNE_OVERRIDES,
        *extra,
    ]


def train_records(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows if r["type"] == "train"]


def checkpoint_step(out: Path) -> int:
    return json.loads((out / "checkpoint" / "state.json").read_text())["step"]


# ---------------------------------------------------------------------------------------- signals


@pytest.mark.slow
def test_sigint_from_outside_saves_a_checkpoint_and_exits_130(pythia_dir: Path, tmp_path: Path):
    """Ctrl-C on a long run: the current step finishes, a checkpoint is written, one message, status 130."""
    out = tmp_path / "run"
    cmd = [str(CONSOLE_SCRIPT), *finetune_args(pythia_dir, out, 100_000, "train.checkpoint_interval=0")]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **OFFLINE_ENV}
    )
    try:
        deadline = time.monotonic() + 180
        log = out / "train_log.jsonl"
        while not (log.is_file() and log.read_text().strip()):  # the first step is done: the handler is in place
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    step = checkpoint_step(out)
    assert lines[0] == (
        f"stopped by SIGINT after step {step}; checkpoint saved to {out / 'checkpoint'}; "
        "run again with --resume to continue"
    )
    assert 1 <= step < 100_000 and len(train_records(out)) == step
    assert stdout == "" and not (out / "model").exists() and not (out / "train_result.json").exists()


@pytest.mark.slow
def test_kill_term_resume_gives_the_uninterrupted_result(pythia_dir: Path, tmp_path: Path, cli):
    """SIGKILL at step 3 (checkpoint at 2), resume, SIGTERM at step 4, resume: same model, same evaluation.

    Leftovers of killed writes (a checkpoint temp folder, a result temp file) are planted and must be ignored.
    """
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    extra = ("train.checkpoint_interval=2",)

    result = qadistill(*finetune_args(pythia_dir, straight, 6, *extra))
    assert result.code == 0, result.stderr[-3000:]

    def launch(signal_name: str, step: int, *more: str):
        cmd = [sys.executable, launcher, *finetune_args(pythia_dir, crashed, 6, *extra, *more)]
        return run_subprocess(cmd, env={"RB_SIGNAL": signal_name, "RB_STEP": str(step)})

    # 1. killed without warning after step 3: the checkpoint of step 2 survives, step 3 is lost
    killed = launch("SIGKILL", 3)
    assert killed.code == -signal.SIGKILL, killed.stderr[-3000:]
    assert checkpoint_step(crashed) == 2 and len(train_records(crashed)) == 3
    assert not (crashed / "model").exists() and not (crashed / "train_result.json").exists()
    # what a kill in the middle of writing leaves behind: a half-written checkpoint folder and result file
    partial = crashed / ".checkpoint.k1ll3d.tmp"
    partial.mkdir()
    (partial / "state.json").write_text('{"step": 5, "fingerprint": {}, "data_position"')
    (partial / "trainable.safetensors").write_bytes(b"\x00" * 10)
    (crashed / ".train_result.json.k1ll3d.tmp").write_text('{"steps": 6, "resumed": fal')

    # 2. resumed, then stopped by SIGTERM after step 4: checkpoint, one message, status 130
    stopped = launch("SIGTERM", 4, "--resume")
    line = f"stopped by SIGTERM after step 4; checkpoint saved to {crashed / 'checkpoint'}; run again with --resume"
    assert stopped.code == 130, stopped.stderr[-3000:]
    assert stopped.lines == [line + " to continue"] and "Traceback" not in stopped.stderr
    assert checkpoint_step(crashed) == 4

    # 3. resumed to the end
    done = qadistill(*finetune_args(pythia_dir, crashed, 6, *extra), "--resume")
    assert done.code == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["resumed"] is True and summary["steps"] == 6
    assert json.loads((crashed / "train_result.json").read_text()) == summary

    # same log, bitwise the same weights, the same evaluation as the uninterrupted run
    assert train_records(crashed) == train_records(straight)
    a, b = load_file(straight / "model" / "model.safetensors"), load_file(crashed / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for run in (straight, crashed):
        evaluated = cli("evaluate", "--model", run / "model", *EVALUATE_ARGS, "--out", run / "eval")
        assert evaluated.code == 0, evaluated.stderr
    predictions = [(run / "eval" / "predictions.jsonl").read_bytes() for run in (straight, crashed)]
    assert predictions[0] == predictions[1]
    metrics = [metrics_without_timing(run / "eval") for run in (straight, crashed)]
    assert metrics[0].pop("model") != metrics[1].pop("model") and metrics[0] == metrics[1]


def test_interrupted_evaluation_exits_130_and_writes_no_result(cli, pythia_dir: Path, tmp_path: Path, monkeypatch):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("qadistill.evaluate.generate_answers", interrupted)
    out = tmp_path / "eval"
    result = cli("evaluate", "--model", pythia_dir, *EVALUATE_ARGS, "--out", out)
    assert result.code == 130 and result.lines == ["interrupted"], result.stderr
    assert not (out / "metrics.json").exists() and not (out / "predictions.jsonl").exists()


# ----------------------------------------------------------------------------------------- atomic files


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"f1": 50.0})

    def disk_full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(qio.os, "fsync", disk_full)
    with pytest.raises(WriteError, match=f"^cannot write {path}: No space left on device$") as err:
        atomic_write_json(path, {"f1": 99.0})
    assert isinstance(err.value, OSError)  # callers that tolerate unwritable caches still catch it
    assert json.loads(path.read_text()) == {"f1": 50.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_results_are_readable_like_any_other_file(tmp_path: Path):
    """mkstemp makes 0600 files: a result must get the usual permissions (0644 with umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_text(tmp_path / "metrics.json", "{}")
    with atomic_dir(tmp_path / "model") as folder:
        (folder / "config.json").write_text("{}")
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o777 & ~umask


def _write_folder(path: Path, version: str) -> None:
    with atomic_dir(path) as tmp:
        (tmp / "weights").write_text(version * 1000)
        (tmp / "state.json").write_text(json.dumps({"version": version}))


def _complete(path: Path) -> str:
    """The version a folder holds, checking that it is whole."""
    version = json.loads((path / "state.json").read_text())["version"]
    assert (path / "weights").read_text() == version * 1000
    return version


@pytest.mark.skipif(sys.platform != "linux", reason="the atomic folder swap uses Linux renameat2")
def test_a_folder_is_complete_whatever_rename_the_process_dies_at(tmp_path: Path, monkeypatch):
    """Replacing a checkpoint folder: a death at any rename leaves the old or the new complete folder, never none.

    (Two plain renames would leave a moment without the folder, and a resumed run would silently start over.)
    """
    path = tmp_path / "checkpoint"
    _write_folder(path, "old")
    real_replace = os.replace
    for dies_at in (1, 2):
        calls = {"n": 0}

        def replace(src, dst, dies_at=dies_at, calls=calls):
            calls["n"] += 1
            if calls["n"] == dies_at:
                raise KeyboardInterrupt("killed")
            return real_replace(src, dst)

        monkeypatch.setattr(qio.os, "replace", replace)
        try:
            _write_folder(path, "new")
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(qio.os, "replace", real_replace)
        assert _complete(path) in ("old", "new")
    _write_folder(path, "newest")
    assert _complete(path) == "newest"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no temp folder is left behind


def test_an_error_inside_an_atomic_folder_keeps_the_old_one(tmp_path: Path):
    path = tmp_path / "model"
    _write_folder(path, "good")
    with pytest.raises(RuntimeError), atomic_dir(path) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("crash while writing")
    assert _complete(path) == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


RESULT = {
    "model": "tiny-half",
    "role": "student",
    "method": "finetune",
    "dataset": "demo-en",
    "shots": 0,
    "split": "validation",
    "seed": 0,
    "params": 1000,
    "teacher": "tiny",
    "teacher_params": 2000,
    "exact": 40.0,
    "f1": 50.0,
    "rouge_l": 45.0,
    "total": 10,
}


def test_report_ignores_leftover_temp_files(cli, tmp_path: Path, caplog):
    """A result temp file (half-written, or complete but never renamed) is not a result."""
    run = tmp_path / "run"
    stage = run / "demo-en" / "0shot" / "tiny" / "tiny-half" / "finetune" / "seed0" / "eval" / "validation"
    atomic_write_json(stage / "metrics.json", RESULT)
    (stage / ".metrics.json.a1b2c3.tmp").write_text(json.dumps({**RESULT, "f1": 99.0, "exact": 99.0}))
    (stage / ".metrics.json.d4e5f6.tmp").write_text('{"model": "tiny-half", "f1": 9')
    other = run / "demo-en" / "0shot" / "tiny" / "tiny-half" / "finetune" / "seed1" / "eval" / "validation"
    other.mkdir(parents=True)
    (other / ".metrics.json.0a0a0a.tmp").write_text(json.dumps({**RESULT, "seed": 1, "f1": 0.0}))
    result = cli("report", run)
    assert result.code == 0, result.stderr
    assert result.lines == [], result.stderr
    assert "skipped" not in caplog.text  # the temp files were not even considered
    rows = list(csv.DictReader((run / "report" / "summary.csv").open(encoding="utf-8")))
    assert len(rows) == 1  # one (model, method, dataset, shots, split), from the one real seed
    assert (rows[0]["n_seeds"], rows[0]["em_mean"], rows[0]["f1_mean"]) == ("1", "40.0", "50.0")


def test_an_unwritable_result_is_one_line(cli, pythia_dir: Path, tmp_path: Path):
    out = tmp_path / "eval"
    (out / "metrics.json").mkdir(parents=True)  # a folder where the result file must go
    result = cli("evaluate", "--model", pythia_dir, *EVALUATE_ARGS, "--out", out)
    assert_one_line_error(result, f"cannot write {out / 'metrics.json'}")
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
