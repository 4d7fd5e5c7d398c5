"""One fine-tuning step and one distillation step of real-size Pythia-410M and Qwen2.5-0.5B: tokens/s and memory.

The models have the real architectures (configs from `qadistill.models.KNOWN_MODELS`, the published config.json
values) with random weights, the real tokenizers (`../shared/data/tokenizers`) and real QA prompts (the embedded
demo-en questions, encoded like training data). A step is the training loop's step, built from the same functions
(`qadistill.train.objectives`, `qadistill.train.optim`): bf16 autocast with fp32 master weights,
AdamW, SDPA attention, the LM head on the answer positions only. Distillation adds the frozen teacher in bf16
(Pythia-1B for Pythia-410M, Qwen2.5-1.5B for Qwen2.5-0.5B) and the skew reverse KL (the chunked objective).

Each measurement runs `--warmup` steps, then times `--steps` steps (CUDA synchronised) and reports the median step
time, tokens/s (non-padding tokens of the batch), answer tokens/s and the peak CUDA memory
(`torch.cuda.max_memory_allocated`, since the model was built). Prints one JSON object; progress goes to stderr.

    .venv/bin/python benchmarks/gpu_step.py                      # CUDA, bf16: ~1 min on an H200
    .venv/bin/python benchmarks/gpu_step.py --device cpu --tiny  # smoke run: tiny models of the same families
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

# (student, teacher) from the model registry, and the tokenizer family
PAIRS = {"pythia": ("pythia-410m", "pythia-1b"), "qwen2.5": ("qwen2.5-0.5b", "qwen2.5-1.5b")}
TINY = {
    "student": {"hidden_size": 64, "num_layers": 2, "num_heads": 4},
    "teacher": {"hidden_size": 96, "num_layers": 3, "num_heads": 4},
}


def log(message: str) -> None:
    print(f"[gpu_step] {message}", file=sys.stderr, flush=True)


def tokenizers_dir() -> Path:
    data = os.environ.get("QADISTILL_DATA_DIR")
    return (Path(data) if data else REPO_ROOT.parent / "shared" / "data") / "tokenizers"


# ------------------------------------------------------------------------------------------------ models, data


def build_model(family: str, name: str, role: str, tokenizer, *, tiny: bool, device: str, dtype: torch.dtype):
    """A random-weight causal LM of the registry model `name` (or a tiny one of its family), built on `device`."""
    from transformers import AutoModelForCausalLM

    from qadistill.models import KNOWN_MODELS, build_config, set_pad_token_id

    info = KNOWN_MODELS[name]
    if tiny:
        sizes = TINY[role]
        kv = None if family == "pythia" else sizes["num_heads"] // 2
        config = build_config(
            info.arch, **sizes, num_kv_heads=kv, intermediate_size=4 * sizes["hidden_size"], vocab_size=info.vocab_size
        )
    else:
        config = info.config()
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(tokenizer, attr) is not None:
            setattr(config, attr, getattr(tokenizer, attr))
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    set_pad_token_id(model, tokenizer)
    return model


def qa_batches(tokenizer, batch_size: int, max_prompt_tokens: int, count: int):
    """`count` batches of real demo-en training prompts + answers, encoded like the training loop's data."""
    from qadistill.config import DataConfig, PromptConfig
    from qadistill.data.prepare import prepare_data, prompt_format
    from qadistill.train.batching import collate, encode_examples

    prepared = prepare_data(DataConfig(dataset="demo-en"))
    fmt = prompt_format(prepared, PromptConfig(max_prompt_tokens=max_prompt_tokens))
    examples = prepared.split("train")[: batch_size * count]
    encoded = encode_examples(examples, fmt, tokenizer, [], 0, 64)
    return [collate(encoded[i : i + batch_size], tokenizer.pad_token_id) for i in range(0, len(encoded), batch_size)]


# ----------------------------------------------------------------------------------------------------- steps


def train_step(accelerator, model, optimizer, batch, cfg, objective) -> float:
    """One optimizer step on one micro-batch with the training loop's objective (`qadistill.train.objectives`)."""
    from qadistill.train.optim import clip_gradients, lr_at, set_lr
    from qadistill.train.sources import MicroBatch

    set_lr(optimizer, lr_at(0, cfg, cfg.max_steps))
    loss = objective(model, MicroBatch("ground_truth", batch.to(accelerator.device))).loss
    accelerator.backward(loss)  # one micro-batch per step: its loss is the window's
    clip_gradients(accelerator, model, cfg)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(args, family: str, mode: str) -> dict[str, Any]:
    """Build the student (and teacher), run warm-up and timed steps; the numbers of one (family, mode)."""
    from qadistill.models import load_real_tokenizer, param_count
    from qadistill.train.config import DistillConfig, TrainConfig
    from qadistill.train.objectives import AnswerCE, AnswerDistillation
    from qadistill.train.optim import build_optimizer, make_accelerator, prepare_trainable

    student_name, teacher_name = PAIRS[family]
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(
        max_steps=100, batch_size=args.batch_size, lr=1e-5, precision=args.precision, eval_interval=0
    )  # lr 1e-5: random weights stay finite
    tokenizer = load_real_tokenizer(family, tokenizers_dir())
    accelerator = make_accelerator()
    log(f"{family} {mode}: building {student_name}{' (tiny)' if args.tiny else ''}")
    model = build_model(
        family, student_name, "student", tokenizer, tiny=args.tiny, device=args.device, dtype=torch.float32
    )
    params = param_count(model)
    model = prepare_trainable(model, cfg)
    optimizer = build_optimizer(model, cfg)
    model, optimizer = accelerator.prepare(model, optimizer)
    teacher, vocab, teacher_params = None, len(tokenizer), None
    if mode == "distill":
        teacher_dtype = torch.bfloat16 if cuda else torch.float32
        teacher = build_model(
            family, teacher_name, "teacher", tokenizer, tiny=args.tiny, device=args.device, dtype=teacher_dtype
        )
        teacher = teacher.requires_grad_(False).eval()
        teacher_params = param_count(teacher)
    if teacher is None:
        objective = AnswerCE(cfg.precision)
    else:
        distill = DistillConfig(divergence="srkl", off_policy={"enabled": False})
        objective = AnswerDistillation(distill, vocab, teacher=teacher, precision=cfg.precision)
    batches = qa_batches(tokenizer, args.batch_size, args.max_prompt_tokens, args.warmup + args.steps)
    times = []
    for i, batch in enumerate(batches):
        synchronize(args.device)
        started = time.perf_counter()
        loss = train_step(accelerator, model, optimizer, batch, cfg, objective)
        synchronize(args.device)
        if i >= args.warmup:
            times.append(time.perf_counter() - started)
    timed = batches[args.warmup :]
    seconds = statistics.median(times)
    tokens = statistics.median(b.n_tokens for b in timed)
    answer_tokens = statistics.median(b.n_answer_tokens for b in timed)
    result = {
        "family": family,
        "mode": mode,
        "student": student_name + (" (tiny)" if args.tiny else ""),
        "student_params": params,
        "teacher": None if teacher is None else teacher_name + (" (tiny)" if args.tiny else ""),
        "teacher_params": teacher_params,
        "attn_implementation": accelerator.unwrap_model(model).config._attn_implementation,
        "batch_size": args.batch_size,
        "tokens_per_batch": tokens,
        "max_seq_len": max(b.input_ids.shape[1] for b in timed),
        "answer_tokens_per_batch": answer_tokens,
        "step_seconds": round(seconds, 4),
        "step_seconds_all": [round(t, 4) for t in times],
        "tokens_per_second": round(tokens / seconds, 1),
        "answer_tokens_per_second": round(answer_tokens / seconds, 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "final_loss": round(loss, 4),
    }
    log(f"{family} {mode}: {seconds:.3f} s/step, {result['tokens_per_second']} tokens/s")
    del model, optimizer, teacher
    accelerator.free_memory()
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny models of the same families (smoke test)")
    parser.add_argument("--families", default="pythia,qwen2.5", help="comma-separated: pythia, qwen2.5")
    parser.add_argument("--modes", default="finetune,distill", help="comma-separated: finetune, distill")
    parser.add_argument("--batch-size", type=int, default=8, help="questions per step (default 8)")
    parser.add_argument("--max-prompt-tokens", type=int, default=768, help="prompt budget (default 768)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", default=None, help="bf16 (default on CUDA) or fp32 (default on CPU)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --device cpu --tiny for the smoke run")
    args.precision = args.precision or ("bf16" if args.device.startswith("cuda") else "fp32")
    setup = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "precision": args.precision,
        "tiny": args.tiny,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "data": "demo-en train questions, zero-shot prompts",
    }
    results = [measure(args, f, m) for f in args.families.split(",") for m in args.modes.split(",")]
    report = {"setup": setup, "results": results}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
