"""Wall time of `qadistill evaluate`'s generator vs lm-evaluation-harness's HF backend on the same prompts.

Both sides get the exact prompt strings `qadistill evaluate` builds, the same model object (dtype, threads) and
greedy decoding that stops at a newline: ours is `generate_answers` (batch 32), lm-eval's is `HFLM.generate_until`
(batch 32, `until=["\\n"]`, our `max_new_tokens`), the call its `generate_until` tasks make. Answers are compared
after our post-processing. With `--repeats N` both are timed N times, alternating which goes first, and the
medians are reported (a shared machine's speed drifts within minutes). Prints one JSON object; `--out` also
writes it to a file.

    .venv/bin/python benchmarks/eval_vs_lm_eval.py --data-dir ../shared/data \\
        --out docs/results/benchmarks/eval_vs_lm_eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from qadistill.config import DataConfig, GenerationConfig, PromptConfig
from qadistill.data.prepare import prepare_data, prompt_format
from qadistill.evaluate import evaluation_prompts
from qadistill.generation import generate_answers
from qadistill.models import context_length, load_model_and_tokenizer
from qadistill.prompts import postprocess_generation


def lm_eval_generate(lm, prompts: list[str], max_new_tokens: int) -> list[str]:
    """lm-eval's HF backend on our prompts, as a `generate_until` task would call it."""
    from lm_eval.api.instance import Instance

    kwargs = {"until": ["\n"], "max_gen_toks": max_new_tokens, "do_sample": False, "temperature": 0.0}
    requests = [
        Instance(request_type="generate_until", doc={}, arguments=(p, kwargs), idx=i) for i, p in enumerate(prompts)
    ]
    return lm.generate_until(requests, disable_tqdm=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", default="squad_v2")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--n", type=int, default=100, help="number of questions")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1, help="time each side this often, alternating; medians")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from lm_eval.models.huggingface import HFLM

    data = prepare_data(DataConfig(dataset=args.dataset, data_dir=args.data_dir, splits={"max_validation": args.n}))
    examples = data.split(args.split)[: args.n]
    model, tokenizer = load_model_and_tokenizer(args.model, dtype=args.dtype)
    fmt = prompt_format(data, PromptConfig(shots=args.shots))
    demo_pool = data.splits.demo_pool if args.shots else []
    window = context_length(model, tokenizer)
    fmt, prompts = evaluation_prompts(examples, fmt, tokenizer, demo_pool, 0, window, args.max_new_tokens)
    settings = GenerationConfig(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, max_gen_toks=args.max_new_tokens)
    generate_answers(model, tokenizer, prompts[:2], settings, progress=False)  # warm-up (newline-token table)
    lm_eval_generate(lm, prompts[:2], args.max_new_tokens)

    sides = {
        "qadistill": lambda: generate_answers(model, tokenizer, prompts, settings, progress=False),
        "lm_eval": lambda: lm_eval_generate(lm, prompts, args.max_new_tokens),
    }
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        for name in sides if repeat % 2 == 0 else reversed(sides):
            start = time.perf_counter()
            outputs[name] = sides[name]()
            seconds[name].append(time.perf_counter() - start)
    ours = [postprocess_generation(g, fmt) for g in outputs["qadistill"]]
    theirs = [postprocess_generation(g, fmt) for g in outputs["lm_eval"]]
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    ours_s, theirs_s = statistics.median(seconds["qadistill"]), statistics.median(seconds["lm_eval"])
    result = {
        "model": args.model,
        "dtype": args.dtype,
        "dataset": args.dataset,
        "split": args.split,
        "shots": args.shots,
        "questions": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "qadistill": {"seconds": round(ours_s, 3), "runs_s": [round(t, 3) for t in seconds["qadistill"]]},
        "lm_eval_hf": {"seconds": round(theirs_s, 3), "runs_s": [round(t, 3) for t in seconds["lm_eval"]]},
        "speedup": round(theirs_s / ours_s, 2),
        "identical_answers": same == len(prompts),
        "identical_count": same,
    }
    text = json.dumps(result)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
