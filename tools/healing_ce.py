#!/usr/bin/env python3
"""Answer-token CE of pruned students before and after healing, one per selection method and layer count.

Reads the JSON `tools/pruning_ce.py` wrote (which layers each method kept, and the CE before healing), heals each
pruned copy by distillation from the unpruned model at every position of prompt and answer (`qadistill distill
... distill.positions=all`, the stage `init: heal` runs in a grid), and measures the same answer-token CE on the
same validation questions afterwards. Prints one JSON document (and writes it to `--out` if given).

Usage:  nice python tools/healing_ce.py --pruning docs/results/pruning/smollm2-135m-instruct-untuned.json \\
            --data-dir ../shared/data --steps 60 --out docs/results/pruning/healing.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from qadistill.config import DataConfig, PromptConfig
from qadistill.data.prepare import prepare_data, prompt_format
from qadistill.data.splits import cap
from qadistill.io import atomic_write_json
from qadistill.models import context_length, load_model_and_tokenizer
from qadistill.prompts import fit_to_context
from qadistill.train.batching import encode_examples
from qadistill.train.config import DistillJob
from qadistill.train.data import fixed_batches
from qadistill.train.distill import run_distill
from qadistill.train.validation import answer_ce


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pruning", type=Path, required=True, help="JSON written by tools/pruning_ce.py")
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder (default: $QADISTILL_DATA_DIR)")
    parser.add_argument("--steps", type=int, default=60, help="healing steps per student")
    parser.add_argument("--batch-size", type=int, default=4, help="training sequences per step")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--divergence", default="forward_kl")
    parser.add_argument("--methods", nargs="*", default=None, help="only these methods (default: all measured)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return parser.parse_args(argv)


def validation_items(model, tokenizer, before: dict):
    """The validation questions `pruning_ce.py` measured on, encoded the same way."""
    prepared = prepare_data(DataConfig(dataset=before["dataset"], data_dir=before.get("data_dir")))
    prompt = PromptConfig(shots=before["shots"], max_prompt_tokens=before["max_prompt_tokens"])
    fmt = fit_to_context(prompt_format(prepared, prompt), context_length(model), before["max_answer_tokens"] + 1)
    demo_pool = prepared.split("demo_pool") if fmt.shots == 1 else []
    questions = cap(prepared.split("validation"), before["questions"], before["seed"])
    items = encode_examples(questions, fmt, tokenizer, demo_pool, before["seed"], before["max_answer_tokens"])
    return sorted(items, key=lambda it: len(it.prompt) + len(it.answer))  # batches of similar lengths


def heal(args, before: dict, kept: list[int], out_dir: Path) -> dict:
    """Distil the unpruned model into its copy keeping `kept`, at every position; the run's result."""
    job = DistillJob(
        teacher=before["model"],
        student="prune:" + ",".join(map(str, kept)),
        out_dir=out_dir,
        data={"dataset": before["dataset"], "data_dir": args.data_dir},
        prompt={"shots": before["shots"], "max_prompt_tokens": before["max_prompt_tokens"]},
        train={"max_steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "warmup_steps": 5}
        | {"eval_interval": 0},  # the CE measured afterwards is the result
        distill={"divergence": args.divergence, "positions": "all", "off_policy": {"enabled": False}},
        seed=before["seed"],
    )
    return run_distill(job, progress=False)


def heal_and_measure(args, before: dict, row: dict, out: Path) -> dict:
    """Heal one pruned copy, then its answer-token CE on the questions `row["ce"]` was measured on."""
    t0 = time.perf_counter()
    result = heal(args, before, row["kept"], out)
    healed, tokenizer = load_model_and_tokenizer(str(out / "model"))
    items = validation_items(healed, tokenizer, before)
    ce = answer_ce(healed, fixed_batches(items, 8, tokenizer.pad_token_id), torch.device("cpu"))
    print(f"{row['layers']} layers, {row['method']}: CE {row['ce']} -> {ce:.3f}", file=sys.stderr)
    return {
        "layers": row["layers"],
        "method": row["method"],
        "kept": row["kept"],
        "ce_before": row["ce"],
        "ce_after": round(ce, 4),
        "heal_steps": result["steps"],
        "heal_sequences": result["micro_batches"] * args.batch_size,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _finished_rows(args) -> list[dict]:
    """Rows an earlier run of the same settings wrote to `--out` (each written whole, atomically)."""
    if args.out is None or not args.out.exists():
        return []
    doc = json.loads(args.out.read_text(encoding="utf-8"))
    healing = doc["healing"]
    settings = (healing["steps"], healing["batch_size"], healing["lr"], healing["divergence"])
    if settings != (args.steps, args.batch_size, args.lr, args.divergence):
        raise SystemExit(f"error: {args.out} was written with other healing settings {settings}; choose another --out")
    return list(doc["results"])


def _document(args, argv, before: dict, results: list[dict], seconds: float) -> dict:
    return {
        "model": before["model"],
        "unpruned_ce": next(r["ce"] for r in before["results"] if r["method"] == "none"),
        "questions": before["questions"],
        "shots": before["shots"],
        "healing": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "divergence": args.divergence,
            "positions": "all",
            "split": "train",
        },
        "torch_threads": torch.get_num_threads(),
        "seconds_this_run": round(seconds, 1),
        "command": "python tools/healing_ce.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    before = json.loads(args.pruning.read_text(encoding="utf-8"))
    before["data_dir"] = args.data_dir
    rows = [r for r in before["results"] if r["method"] != "none"]
    if args.methods:
        rows = sorted((r for r in rows if r["method"] in args.methods), key=lambda r: args.methods.index(r["method"]))
    started = time.perf_counter()
    results = _finished_rows(args)
    with tempfile.TemporaryDirectory(prefix="qadistill-heal-") as tmp:
        for row in rows:
            if any(r["method"] == row["method"] and r["layers"] == row["layers"] for r in results):
                continue  # measured by an earlier, interrupted run of the same command
            results.append(heal_and_measure(args, before, row, Path(tmp) / f"{row['method']}-{row['layers']}"))
            doc = _document(args, argv, before, results, time.perf_counter() - started)
            if args.out is not None:
                atomic_write_json(args.out, doc)  # after every row: an interruption loses one row at most
    print(json.dumps(_document(args, argv, before, results, time.perf_counter() - started), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
