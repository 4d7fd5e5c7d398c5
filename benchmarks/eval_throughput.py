"""Questions/s of qadistill's batched generator vs. one plain `generate` call per question.

Same model, dtype, prompts and greedy decoding. The plain way is what most evaluation scripts do: no batching,
a fixed `max_new_tokens`, stopping only at EOS; its text is post-processed the same way (cut at the first newline).
With `--repeats N` both are timed N times, alternating which goes first, and the medians are reported (a shared
machine's speed drifts by 10% within minutes). Prints one JSON object.

    .venv/bin/python benchmarks/eval_throughput.py --dataset squad_v2 --data-dir ../shared/data --n 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from qadistill.config import DataConfig, PromptConfig
from qadistill.data.prepare import prepare_data, prompt_format
from qadistill.evaluate import build_prompts
from qadistill.generation import GenerationSettings, generate_answers
from qadistill.models import load_model_and_tokenizer
from qadistill.prompts import postprocess_generation
from qadistill.tokenize import prompt_ids


def plain_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """One `generate` call per question, fixed token budget, EOS as the only stop."""
    outputs = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([prompt_ids(tokenizer, prompt)])
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            outputs.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", default="demo-en")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--n", type=int, default=48, help="number of questions")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=GenerationSettings.batch_size)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1, help="time each side this often, alternating; medians")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = prepare_data(
        DataConfig(dataset=args.dataset, data_dir=args.data_dir, splits={"max_validation": args.n, "max_test": args.n})
    )
    fmt = prompt_format(data, PromptConfig(shots=args.shots))
    examples = data.split(args.split)[: args.n]
    model, tokenizer = load_model_and_tokenizer(args.model, dtype=args.dtype)
    prompts = build_prompts(examples, fmt, tokenizer, data.splits.demo_pool, seed=0)
    settings = GenerationSettings(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    generate_answers(model, tokenizer, prompts[:2], settings, progress=False)  # warm-up (newline-token table)

    sides = {
        "batched": lambda: generate_answers(model, tokenizer, prompts, settings, progress=False),
        "plain": lambda: plain_generate(model, tokenizer, prompts, args.max_new_tokens),
    }
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        for name in sides if repeat % 2 == 0 else reversed(sides):
            start = time.perf_counter()
            outputs[name] = sides[name]()
            seconds[name].append(time.perf_counter() - start)
    batched, plain = outputs["batched"], outputs["plain"]
    batched_s, plain_s = statistics.median(seconds["batched"]), statistics.median(seconds["plain"])

    batched_answers = [postprocess_generation(g, fmt) for g in batched]
    plain_answers = [postprocess_generation(g, fmt) for g in plain]
    same = sum(a == b for a, b in zip(batched_answers, plain_answers, strict=True))
    result = {
        "model": args.model,
        "dtype": args.dtype,
        "dataset": args.dataset,
        "questions": len(prompts),
        "threads": torch.get_num_threads(),
        "batched": {
            "seconds": round(batched_s, 3),
            "questions_per_s": round(len(prompts) / batched_s, 3),
            "batch_size": args.batch_size,
            "runs_s": [round(t, 3) for t in seconds["batched"]],
        },
        "plain_generate": {
            "seconds": round(plain_s, 3),
            "questions_per_s": round(len(prompts) / plain_s, 3),
            "max_new_tokens": args.max_new_tokens,
            "runs_s": [round(t, 3) for t in seconds["plain"]],
        },
        "speedup": round(plain_s / batched_s, 2),
        "identical_answers": same == len(prompts),
        "identical_count": same,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
