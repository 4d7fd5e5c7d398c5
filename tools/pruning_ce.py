#!/usr/bin/env python3
"""Answer-token CE of a model and of its layer-pruned copies, one per selection method and layer count.

Measures how much a pruned student has to recover before training: the CE of the gold answer tokens (answer
tokens only, the training prompt format, as training validates: `train.validation.answer_ce`) on the dataset's
validation split, for the unpruned model and for each `--keep` x `--methods` pruning. Measured methods are
calibrated on `--calibration-examples` training-split prompts with their gold answers (`qadistill.train.
calibration`). Prints one JSON document (and writes it to `--out` if given). Any model folder or registry name
works, so the same command measures the untuned model, a fine-tuned teacher, or a healed student.

Usage:  nice python tools/pruning_ce.py --data-dir ../shared/data --keep 20 15 --examples 200
        nice python tools/pruning_ce.py --model runs/x/squad_v2/0shot/t/teacher/train/model --data-dir ../shared/data

`block-last` (a method of this script only) is Gromov et al.'s angular distance read at the last token of each
calibration sequence, as in the paper, instead of at every token (the package's `block`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from qadistill.config import DataConfig, PromptConfig, PruneConfig
from qadistill.data.prepare import prepare_data, prompt_format
from qadistill.data.splits import cap
from qadistill.io import atomic_write_json
from qadistill.models import context_length, load_model_and_tokenizer, prune_layers, spread_layers
from qadistill.models.layer_importance import stream_distances
from qadistill.prompts import fit_to_context
from qadistill.train.batching import encode_examples
from qadistill.train.calibration import calibration_sequences
from qadistill.train.data import fixed_batches
from qadistill.train.validation import answer_ce

METHODS = ("spread", "block_influence", "block", "block-last")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model folder or registry name")
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder (default: $QADISTILL_DATA_DIR)")
    parser.add_argument("--dataset", default="squad_v2")
    parser.add_argument(
        "--keep", type=int, nargs="*", default=[20, 15], help="layer counts to prune to (none: only the model)"
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS[:3]), choices=METHODS)
    parser.add_argument("--examples", type=int, default=200, help="validation questions the CE is measured on")
    parser.add_argument("--calibration-examples", type=int, default=64, help="training prompts the scores use")
    parser.add_argument("--shots", type=int, choices=(0, 1), default=0)
    parser.add_argument("--max-prompt-tokens", type=int, default=768)
    parser.add_argument("--max-answer-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="picks the questions and calibration prompts")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return parser.parse_args(argv)


def _ce(model, items, batch_size: int, pad_id: int) -> float:
    """Answer-token CE; batches of similar lengths (less padding: the CE is a sum over tokens, order-free)."""
    items = sorted(items, key=lambda it: len(it.prompt) + len(it.answer))
    return answer_ce(model, fixed_batches(items, batch_size, pad_id), next(model.parameters()).device)


def _row(model, kept: list[int], method: str, scores, items, args, pad_id: int) -> dict:
    """The CE of `model` pruned to `kept` (the model itself when it keeps every layer)."""
    t0 = time.perf_counter()
    pruned = model if len(kept) == model.config.num_hidden_layers else prune_layers(model, kept)
    ce = _ce(pruned, items, args.batch_size, pad_id)
    row = {"layers": len(kept), "method": method, "kept": kept, "ce": round(ce, 4)}
    row |= {"seconds": round(time.perf_counter() - t0, 1), "scores": scores}
    print(f"{len(kept)} layers, {method}: CE {ce:.3f}, kept {kept}", file=sys.stderr)
    return row


def _measure(model, sequences, methods: list[str], pad_id: int) -> dict:
    """The calibration statistics each asked-for method needs: over every token, and/or over the last one."""
    wanted = {"last" if m == "block-last" else "all" for m in methods if m != "spread"}
    return {positions: stream_distances(model, sequences, pad_id=pad_id, positions=positions) for positions in wanted}


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(args.model, dtype="float32")
    num_layers, pad_id = model.config.num_hidden_layers, tokenizer.pad_token_id
    prepared = prepare_data(DataConfig(dataset=args.dataset, data_dir=args.data_dir))
    prompt = PromptConfig(shots=args.shots, max_prompt_tokens=args.max_prompt_tokens)
    fmt = fit_to_context(prompt_format(prepared, prompt), context_length(model), args.max_answer_tokens + 1)
    demo_pool = prepared.split("demo_pool") if fmt.shots == 1 else []
    questions = cap(prepared.split("validation"), args.examples, args.seed)
    items = encode_examples(questions, fmt, tokenizer, demo_pool, args.seed, args.max_answer_tokens)

    rows = [_row(model, list(range(num_layers)), "none", None, items, args, pad_id)]
    t0 = time.perf_counter()
    count, answer_tokens = args.calibration_examples, args.max_answer_tokens
    sequences = calibration_sequences(
        prepared, fmt, tokenizer, count=count, seed=args.seed, max_answer_tokens=answer_tokens
    )
    measured = _measure(model, sequences, args.methods, pad_id) if args.keep else {}
    calibration_seconds = round(time.perf_counter() - t0, 1)
    for keep in args.keep:
        for method in args.methods:
            base = method.removesuffix("-last")
            PruneConfig(method=base, keep=keep)  # only values the experiment config accepts
            if method == "spread":
                rows.append(_row(model, spread_layers(num_layers, keep), method, None, items, args, pad_id))
                continue
            choice = measured["last" if method == "block-last" else "all"].choose(base, keep)
            scores = [round(s, 5) for s in choice.scores]
            rows.append(_row(model, choice.kept, method, scores, items, args, pad_id))

    result = {
        "model": args.model,
        "num_layers": num_layers,
        "dataset": args.dataset,
        "split": "validation",
        "questions": len(items),
        "answer_tokens": sum(len(it.answer) for it in items),
        "shots": fmt.shots,
        "max_prompt_tokens": fmt.max_prompt_tokens,
        "max_answer_tokens": args.max_answer_tokens,
        "calibration": {
            "split": "train",
            "examples": len(sequences),
            "tokens": {p: stats.tokens for p, stats in measured.items()},
            "seconds": calibration_seconds,
        },
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - started, 1),
        "command": "python tools/pruning_ce.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "results": rows,
    }
    print(json.dumps(result, indent=1))
    if args.out is not None:
        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
