"""Multi-process training: 2 processes (DDP over gloo on the CPU, launched with torchrun) with the same global batch as
1 process give the same run, and a NaN or a stop signal on one process is followed by the other instead of a hang.

One process trains with `batch_size` 4; two processes with 2 each take the two halves of the same global batches
(`DataOrder`), so the per-step losses, gradient norms, token counts and final weights must agree up to float
rounding. All multi-process jobs run in one launch (`ddp_worker.py`) to pay the start-up once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from qadistill.models import build_tiny_model, load_real_tokenizer, save_model
from qadistill.train.config import DistillJob, FinetuneJob
from qadistill.train.distill import run_distill
from qadistill.train.finetune import run_finetune

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ddp")]  # one worker builds the module fixture once

WORKER = Path(__file__).with_name("ddp_worker.py")
WORKER_ALARM_S = 180  # a hang (a collective one process never joins) ends the workers and fails the test
LAUNCH_TIMEOUT_S = 240
LOSS_RTOL = 1e-5  # measured: ~1e-7 for loss / CE / grad norm, ~3e-6 for the divergence
# Adam turns float noise in (near-)zero gradients (the attention key bias, rare embedding rows) into updates of
# up to ~lr, so the final weights are compared relative to the largest update: measured ~0.05-0.25 %.
WEIGHT_RTOL_OF_UPDATE = 0.01

TRAIN = {
    "max_steps": 4,
    "lr": 3e-3,
    "warmup_steps": 1,
    "eval_interval": 2,
    "eval_examples": 4,
    "checkpoint_interval": 2,
}


def job_doc(kind: str, models: dict[str, Path], out: Path, **train: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "out_dir": str(out),
        "data": {"dataset": "demo-en", "splits": {"max_train": 16}},
        "prompt": {"max_prompt_tokens": 96},
        "train": TRAIN | train,
    }
    if kind == "finetune":
        return doc | {"model": str(models["student"])}
    return doc | {
        "teacher": str(models["teacher"]),
        "student": str(models["student"]),
        "distill": {"kd_ratio": 0.5, "off_policy": {"enabled": False}},  # ground truth only
    }


def launch(spec: dict[str, Any], folder: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """torchrun `nproc` CPU processes of ddp_worker.py (they end themselves after WORKER_ALARM_S)."""
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec), "utf-8")
    env = os.environ | {
        "ACCELERATE_USE_CPU": "1",  # torchrun without GPUs: accelerate's MULTI_CPU (gloo)
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DDP_WORKER_ALARM_S": str(WORKER_ALARM_S),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1"]
    cmd += ["--nproc_per_node", str(nproc), str(WORKER), str(spec_path)]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # torchrun stopping its workers (each in a session of its own) on SIGTERM
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        pytest.fail(f"the 2-process launch hung for {LAUNCH_TIMEOUT_S} s:\n{output.decode()[-4000:]}")
    return subprocess.CompletedProcess(cmd, process.returncode, output.decode(), "")


def records(out: Path, kind: str = "train") -> list[dict[str, Any]]:
    lines = (out / "train_log.jsonl").read_text("utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def outcomes(out: Path, tag: str = "") -> list[dict[str, Any]]:
    return [json.loads(Path(f"{out}{tag and '.' + tag}.rank{rank}.json").read_text("utf-8")) for rank in (0, 1)]


@pytest.fixture(scope="module")
def runs(shared_data: Path, tmp_path_factory) -> dict[str, Any]:
    """Tiny Qwen2.5 student and teacher (tied embeddings, so the sparse lookup gradient meets DDP's reducer); the
    single-process runs in this process, the 2-process ones in one launch."""
    root = tmp_path_factory.mktemp("ddp")
    tokenizer = load_real_tokenizer("qwen2.5", shared_data / "tokenizers")
    models = {
        "student": save_model(
            build_tiny_model("qwen2.5", tokenizer, hidden_size=32, num_layers=2, num_heads=4, seed=2),
            tokenizer,
            root / "student",
        ),
        "teacher": save_model(
            build_tiny_model("qwen2.5", tokenizer, hidden_size=64, num_layers=3, num_heads=4, seed=1),
            tokenizer,
            root / "teacher",
        ),
    }
    # one process, batch 4 (distillation: 4 x 2 accumulated micro-batches)
    run_finetune(FinetuneJob.model_validate(job_doc("finetune", models, root / "ft-1", batch_size=4)), progress=False)
    kd_single = job_doc("distill", models, root / "kd-1", batch_size=4, grad_accum=2)
    run_distill(DistillJob.model_validate(kd_single), progress=False)
    # two processes, batch 2 each: the same global batches; then one process misbehaving
    short = {"max_steps": 3, "batch_size": 2, "checkpoint_interval": 0, "eval_interval": 0}
    jobs = [
        {"kind": "finetune", "job": job_doc("finetune", models, root / "ft-2", batch_size=2)},
        {"kind": "distill", "job": job_doc("distill", models, root / "kd-2", batch_size=2, grad_accum=2)},
        {
            "kind": "finetune",
            "job": job_doc("finetune", models, root / "nan-skip", **short, nan_policy="skip"),
            "inject": {"nan_loss": {"rank": 1, "call": 2}},
        },
        {
            "kind": "finetune",
            "job": job_doc("finetune", models, root / "nan-stop", **short, nan_policy="stop"),
            "inject": {"nan_loss": {"rank": 1, "call": 2}},
        },
        {
            "kind": "finetune",
            "job": job_doc("finetune", models, root / "signal", **short),
            "inject": {"signal": {"rank": 1, "step": 2}},
        },
        {
            "kind": "finetune",
            "job": job_doc("finetune", models, root / "signal", **short) | {"resume": True},
            "tag": "resume",
        },
        {"kind": "finetune", "job": job_doc("finetune", models, root / "straight", **short)},
    ]
    result = launch({"jobs": jobs}, root)
    assert result.returncode == 0, result.stdout[-4000:]
    return {"root": root, "output": result.stdout}


def relative_differences(single: list[dict], multi: list[dict], key: str) -> list[float]:
    return [abs(a[key] - b[key]) / max(abs(a[key]), 1e-12) for a, b in zip(single, multi, strict=True)]


def weight_differences(start: Path, a: Path, b: Path) -> tuple[float, float]:
    """(largest |a - b|, largest |a - start|) over all weights."""
    w0, wa, wb = (load_file(str(folder / "model.safetensors")) for folder in (start, a, b))
    assert wa.keys() == wb.keys() == w0.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa), max(float((wa[k] - w0[k]).abs().max()) for k in wa)


@pytest.mark.parametrize(
    ("single", "multi", "keys"), [("ft-1", "ft-2", ["loss"]), ("kd-1", "kd-2", ["loss", "ce", "divergence"])]
)
def test_two_processes_match_one_with_the_same_global_batch(runs, single, multi, keys):
    root = runs["root"]
    assert outcomes(root / multi) == [{"outcome": "ok"}] * 2
    one, two = records(root / single), records(root / multi)
    assert [r["step"] for r in two] == [1, 2, 3, 4]  # logged once (main process only), every step
    assert [r["loss_tokens"] for r in one] == [r["loss_tokens"] for r in two]  # the same global batches
    for key in [*keys, "grad_norm"]:
        worst = max(relative_differences(one, two, key))
        print(f"{single} vs {multi}: max relative {key} difference {worst:.2e}")
        assert worst <= LOSS_RTOL, (key, [r[key] for r in one], [r[key] for r in two])
    assert [r["val_ce"] for r in records(root / single, "eval")] == pytest.approx(
        [r["val_ce"] for r in records(root / multi, "eval")], rel=LOSS_RTOL
    )
    diff, update = weight_differences(root / "student", root / single / "model", root / multi / "model")
    print(f"{single} vs {multi}: max weight difference {diff:.2e} (largest update {update:.2e})")
    assert diff <= WEIGHT_RTOL_OF_UPDATE * update
    r1, r2 = (json.loads((root / name / "train_result.json").read_text()) for name in (single, multi))
    assert (r1["tokens"], r1["loss_tokens"], r1["steps"]) == (r2["tokens"], r2["loss_tokens"], r2["steps"])


def test_a_nan_on_one_process_skips_the_step_on_both(runs):
    out = runs["root"] / "nan-skip"
    assert outcomes(out) == [{"outcome": "ok"}] * 2
    steps = records(out)
    assert [(r["step"], r["skipped"]) for r in steps] == [(1, False), (2, True), (3, False)]
    assert json.loads((out / "train_result.json").read_text())["skipped_steps"] == 1


def test_a_nan_on_one_process_stops_both(runs):
    out = runs["root"] / "nan-stop"
    assert [(o["outcome"], o["step"]) for o in outcomes(out)] == [("NonFiniteLoss", 2)] * 2
    assert not (out / "model").exists()


def test_a_signal_to_one_process_stops_both_after_a_checkpoint(runs):
    out = runs["root"] / "signal"
    assert [(o["outcome"], o["step"]) for o in outcomes(out)] == [("TrainingInterrupted", 2)] * 2
    assert "another process" in outcomes(out)[0]["message"]  # rank 1 got the signal, rank 0 followed
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 2  # (later resumed, see below)


def test_a_run_stopped_on_two_processes_resumes_to_the_uninterrupted_run(runs):
    root = runs["root"]
    assert outcomes(root / "signal", "resume") == [{"outcome": "ok"}] * 2
    assert outcomes(root / "straight") == [{"outcome": "ok"}] * 2
    resumed, straight = records(root / "signal"), records(root / "straight")
    assert [r["step"] for r in resumed] == [1, 2, 3]
    assert max(relative_differences(straight, resumed, "loss")) <= 1e-6
    diff, update = weight_differences(root / "student", root / "straight" / "model", root / "signal" / "model")
    assert diff <= 1e-3 * update
