"""Wall time and peak memory of a small distillation grid with and without the teacher-logit cache.

One teacher, two students, two seeds = 4 distillations (zero-shot, so every run of the grid shares one cache),
each in its own subprocess so its peak RSS can be measured (`os.wait4`). Without the cache every run loads the
teacher and runs it on every batch; with it the first run builds the cache (one teacher pass over the training
prompts) and the other three never load the teacher. The models are tiny random Pythia-architecture models
(teacher much wider and deeper than the students, as in reality) with the real GPT-NeoX tokenizer from
`../shared/data/tokenizers` (or `$QADISTILL_DATA_DIR/tokenizers`); without it, the SmolLM2 tokenizer of
`qadistill setup` with Llama-architecture models. The data is the packaged `demo-en` set. Prints one JSON object.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/grid_cache.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_ARGS = ("teacher_hidden", "teacher_layers", "student_hidden")


def tokenizer_and_family():
    """The real GPT-NeoX tokenizer (pythia) if the shared data has it, else SmolLM2's (llama)."""
    from qadistill.models import load_real_tokenizer, load_tokenizer, smollm2_dir

    data = Path(os.environ.get("QADISTILL_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
    if (data / "tokenizers" / "gpt-neox-20b" / "tokenizer.json").is_file():
        return load_real_tokenizer("pythia", data / "tokenizers"), "pythia"
    if smollm2_dir().is_dir():
        return load_tokenizer(smollm2_dir()), "llama"
    sys.exit(f"no tokenizer: put the shared data at {data} (tokenizers/gpt-neox-20b) or run `qadistill setup`")


def build_models(root: Path, args) -> dict[str, str]:
    from qadistill.models import build_tiny_model, param_count, save_model

    tokenizer, family = tokenizer_and_family()
    specs = {
        "teacher": (args.teacher_hidden, args.teacher_layers, 1),
        "student-a": (args.student_hidden, 2, 2),
        "student-b": (args.student_hidden // 2, 2, 3),
    }
    folders, sizes = {}, {}
    for name, (hidden, layers, seed) in specs.items():
        model = build_tiny_model(
            family, tokenizer, hidden_size=hidden, num_layers=layers, num_heads=max(2, hidden // 64), seed=seed
        )
        sizes[name] = param_count(model)
        folders[name] = str(save_model(model, tokenizer, root / name))
    return {"family": family, "folders": folders, "params": sizes}


def job_doc(models: dict, student: str, seed: int, out: Path, cache_dir: Path | None, args) -> dict:
    return {
        "teacher": models["folders"]["teacher"],
        "student": models["folders"][student],
        "out_dir": str(out),
        "seed": seed,
        "data": {"dataset": "demo-en", "splits": {"max_train": args.train_examples}},
        "prompt": {"max_prompt_tokens": args.max_prompt_tokens},
        "train": {
            "max_steps": args.steps,
            "batch_size": args.batch_size,
            "lr": 1e-3,
            "eval_interval": 0,
            "checkpoint_interval": 0,
        },
        "distill": {
            "divergence": "srkl",
            "kd_ratio": 0.5,
            "off_policy": {"enabled": False},
            "teacher_cache": {
                "enabled": cache_dir is not None,
                "k": args.k,
                "dir": str(cache_dir) if cache_dir else None,
            },
        },
    }


def make_models_worker(root: str, args) -> None:
    """Child process: build and save the models, write their description to `root/models.json`."""
    models = build_models(Path(root), args)
    (Path(root) / "models.json").write_text(json.dumps(models))


def run_worker(job_path: str) -> None:
    """Child process: one distillation; its result goes to stdout as the last line."""
    from qadistill.train.config import DistillJob
    from qadistill.train.distill import run_distill

    job = DistillJob.model_validate(json.loads(Path(job_path).read_text()))
    result = run_distill(job, progress=False)
    print(json.dumps(result))


def run_grid(models: dict, root: Path, cache_dir: Path | None, args) -> dict:
    """The 4 distillations one after the other, each in a subprocess; wall time and per-run peak RSS."""
    root.mkdir(parents=True, exist_ok=True)
    runs = []
    started = time.perf_counter()
    for student in ("student-a", "student-b"):
        for seed in (0, 1):
            name = f"{student}-seed{seed}"
            job_path = root / f"{name}.json"
            job_path.write_text(json.dumps(job_doc(models, student, seed, root / name, cache_dir, args)))
            out, err = root / f"{name}.stdout", root / f"{name}.stderr"
            t0 = time.perf_counter()
            with out.open("w") as stdout, err.open("w") as stderr:
                proc = subprocess.Popen(
                    [sys.executable, __file__, "--worker", str(job_path)], stdout=stdout, stderr=stderr
                )
                # wait4: this child's own rusage (RUSAGE_CHILDREN would be the max over all children so far)
                _, status, usage = os.wait4(proc.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            proc.returncode = code  # reaped above; keeps Popen from waiting again
            if code != 0:
                sys.exit(f"run {name} failed ({code}):\n{err.read_text()[-3000:]}")
            result = json.loads(out.read_text().strip().splitlines()[-1])
            runs.append(
                {
                    "run": name,
                    "wall_seconds": round(time.perf_counter() - t0, 2),
                    "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                    "teacher_source": result["teacher_source"],
                    "cache_built": (result["teacher_cache"] or {}).get("built"),
                    "train_seconds": result["seconds"],
                    "final_train_loss": result["final_train_loss"],
                }
            )
    wall = time.perf_counter() - started
    reusing = [r["peak_rss_mb"] for r in runs if r["teacher_source"] == "cache" and not r["cache_built"]]
    return {
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "peak_rss_mb_runs_reusing_cache": max(reusing) if reusing else None,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--make-models", help=argparse.SUPPRESS)
    parser.add_argument("--teacher-hidden", type=int, default=512)
    parser.add_argument("--teacher-layers", type=int, default=8)
    parser.add_argument("--student-hidden", type=int, default=128)
    parser.add_argument("--train-examples", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-prompt-tokens", type=int, default=128)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--work-dir", type=Path, default=None, help="kept when given; else a temporary folder")
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker)
        return
    if args.make_models:
        make_models_worker(args.make_models, args)
        return

    with tempfile.TemporaryDirectory(prefix="qadistill-grid-cache-") as tmp:
        root = args.work_dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        # children inherit the parent's peak RSS through fork/exec on Linux: this process stays small (no torch),
        # and the models are made in a child of their own
        argv = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k in MODEL_ARGS]
        subprocess.run([sys.executable, __file__, "--make-models", str(root / "models"), *argv], check=True)
        models = json.loads((root / "models" / "models.json").read_text())
        live = run_grid(models, root / "live", None, args)
        cached = run_grid(models, root / "cached", root / "cached" / "teacher_logits", args)
    report = {
        "grid": "1 teacher x 2 students x 2 seeds (4 distillations, each in its own process)",
        "family": models["family"],
        "params": models["params"],
        "settings": {
            k: getattr(args, k)
            for k in ("train_examples", "steps", "batch_size", "max_prompt_tokens", "k", "teacher_layers")
        },
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "without_cache": live,
        "with_cache": cached,
        "wall_ratio_cached_over_live": round(cached["wall_seconds"] / live["wall_seconds"], 3),
        "peak_rss_ratio_cached_over_live": round(cached["peak_rss_mb"] / live["peak_rss_mb"], 3),
        "target_wall_ratio": 0.6,
    }
    report["meets_target"] = report["wall_ratio_cached_over_live"] <= 0.6
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
