"""One distillation step: qadistill's loop vs. TRL's GKDTrainer (off-policy), tokens/s and peak memory.

Both sides train the same tiny Qwen2-architecture student (saved once, loaded by each side) against the same tiny
teacher, at Qwen2.5's real vocabulary size, on the same pre-tokenized QA-shaped rows (prompt + answer, the answer
ending with EOS), in fp32 on the CPU with the same thread count. Each side runs in its own process
(`_distill_step_worker.py`), so each peak RSS is that side's alone. The divergence is the same function on both
sides: reverse KL = GKD beta 1 (default), forward KL = GKD beta 0, or the generalized JSD with the same beta.

What differs is the implementation: qadistill projects only the answer positions (teacher under inference mode),
GKDTrainer computes (B, T, V) logits for teacher and student over every position.

Prints one JSON line `{"qadistill": {...}, "trl": {...}, "ratio": {...}, "setup": {...}}`; progress goes to stderr.
Each side has `step_s` (mean over the timed steps), `tokens_per_s` = batch x (prompt + answer) / step_s,
`peak_rss_mb`, `baseline_rss_mb` (imports + both models loaded) and `peak_delta_mb`, plus `cpu_s` (process CPU
time per step). `ratio` compares the medians; with repeats, `ratio.tokens_per_s_paired` also gives the median
(and range) of each repeat's own ratio. On a machine whose cores are oversubscribed, use `--threads 1`: with more
threads every small op waits for a descheduled OpenMP worker (measured here: a (4, 327, 128) multiply took 11.6 ms
with 2 threads vs 0.06 ms with 1), which inflates the side made of many small ops, qadistill's, far more than TRL's
huge ones.

    .venv/bin/python benchmarks/distill_step.py                 # batch 4, prompt 320, answer 8, vocab 151,936
    .venv/bin/python benchmarks/distill_step.py --repeats 2     # alternate the two sides, report medians
    .venv/bin/python benchmarks/distill_step.py --with-cache    # also qadistill with its teacher-logit cache
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("_distill_step_worker.py")
QWEN_EOS = 151643  # <|endoftext|>: Qwen2.5's eos and pad id
GKD_BETA = {"forward_kl": 0.0, "reverse_kl": 1.0}  # GKD's generalized JSD at its two ends


def default_tokenizer_dir() -> Path:
    data = os.environ.get("QADISTILL_DATA_DIR")
    return (Path(data) if data else REPO_ROOT.parent / "shared" / "data") / "tokenizers" / "qwen2.5"


def log(message: str) -> None:
    print(f"[distill_step] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------- tokenizer, rows


def synthetic_tokenizer(vocab_size: int):
    """A word-level tokenizer with one token per embedding row (`<tN>`), eos = pad = `<|endoftext|>`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from qadistill.models import prepare_tokenizer

    eos_id = QWEN_EOS if vocab_size > QWEN_EOS else vocab_size - 1
    vocab = {f"<t{i}>": i for i in range(vocab_size) if i != eos_id}
    vocab["<|endoftext|>"] = eos_id
    core = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    return prepare_tokenizer(tokenizer)


def demo_questions() -> list[tuple[str, str, int]]:
    """(context, question, answer_start) of the bundled English demo questions (SQuAD format)."""
    doc = json.loads(resources.files("qadistill.resources").joinpath("demo_qa_en.json").read_text("utf-8"))
    out = []
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa["answers"]:
                    out.append((paragraph["context"], qa["question"], qa["answers"][0]["answer_start"]))
    return out


def text_rows(tokenizer, n: int, prompt_len: int, answer_len: int) -> list[dict[str, list[int]]]:
    """Real QA text: "Context/Question/Answer:" prompts cut to exactly `prompt_len` tokens (other contexts fill the
    front), answers = the context from the gold span on, `answer_len - 1` tokens + EOS."""
    questions = demo_questions()

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    filler_text = "\n\n".join(dict.fromkeys(c for c, _, _ in questions))
    filler = encode(filler_text)
    while len(filler) < prompt_len:
        filler = filler + filler
    rows = []
    for i in range(n):
        context, question, start = questions[i % len(questions)]
        prompt = (filler + encode(f"Context: {context}\nQuestion: {question}\nAnswer:"))[-prompt_len:]
        answer = encode(" " + context[start:] + "\n" + filler_text)[: answer_len - 1] + [tokenizer.eos_token_id]
        rows.append({"prompt": prompt, "answer": answer})
    return rows


def synthetic_rows(n: int, prompt_len: int, answer_len: int, vocab: int, eos_id: int) -> list[dict[str, list[int]]]:
    rng = random.Random(0)
    pick = [i for i in range(min(vocab, 50_000)) if i != eos_id]
    return [
        {
            "prompt": [rng.choice(pick) for _ in range(prompt_len)],
            "answer": [rng.choice(pick) for _ in range(answer_len - 1)] + [eos_id],
        }
        for _ in range(n)
    ]


# ------------------------------------------------------------------------------------------------------- models


def build_models(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Tiny Qwen2 teacher and student with the tokenizer, saved to `folder`; returns the spec's model part."""
    from qadistill.models import build_tiny_model, load_real_tokenizer, param_count, save_model

    tok_dir = Path(args.tokenizer_dir) if args.tokenizer_dir else default_tokenizer_dir()
    if not args.synthetic_tokens and tok_dir.is_dir():
        tokenizer = load_real_tokenizer("qwen2.5", tok_dir.parent)
        tokenizer_note = f"Qwen2.5 ({tok_dir}), {len(tokenizer)} tokens"
        rows = text_rows(tokenizer, args.batch_size, args.prompt_len, args.answer_len)
    else:
        tokenizer = synthetic_tokenizer(args.vocab)
        why = "--synthetic-tokens" if args.synthetic_tokens else f"{tok_dir} is absent"
        tokenizer_note = f"synthetic token ids, word-level stand-in tokenizer of {len(tokenizer)} tokens ({why})"
        rows = synthetic_rows(args.batch_size, args.prompt_len, args.answer_len, args.vocab, tokenizer.eos_token_id)
    sizes = {}
    for role, hidden, layers, heads, seed in (
        ("teacher", args.teacher_hidden, args.teacher_layers, args.teacher_heads, 1),
        ("student", args.student_hidden, args.student_layers, args.student_heads, 2),
    ):
        model = build_tiny_model(
            "qwen2.5",
            tokenizer,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            vocab_size=args.vocab,
            seed=seed,
            max_position_embeddings=max(2048, args.prompt_len + args.answer_len),
        )
        save_model(model, tokenizer, folder / role)
        sizes[role] = {"hidden": hidden, "layers": layers, "heads": heads, "params": param_count(model)}
        del model
    return {
        "teacher_dir": str(folder / "teacher"),
        "student_dir": str(folder / "student"),
        "rows": rows,
        "models": sizes,
        "tokenizer": tokenizer_note,
        "shared_vocab": len(tokenizer),
    }


def project_adamw_is_fused() -> bool:
    """Whether qadistill's `build_optimizer` makes a fused AdamW: TRL then gets the same kind of optimizer."""
    import torch

    from qadistill.train.config import TrainConfig
    from qadistill.train.optim import build_optimizer

    optimizer = build_optimizer(torch.nn.Linear(2, 2), TrainConfig())
    return bool(optimizer.defaults.get("fused"))


# ------------------------------------------------------------------------------------------------------ workers


def memory_needed_mb(side: str, spec: dict[str, Any]) -> float:
    """A generous estimate of a worker's peak RSS, to refuse starting one the machine cannot hold (shared hosts).

    Fixed part (interpreter, torch, transformers) ~1 GB, the weights of both models, the student's gradients and
    AdamW moments; GKDTrainer also keeps ~10 fp32 (B, T, V) tensors alive at its peak (measured: ~9.2).
    """
    models = spec["models"]
    weights = 4 * (models["teacher"]["params"] + models["student"]["params"])
    training = 4 * 4 * models["student"]["params"]
    btv = spec["batch_size"] * (spec["prompt_len"] + spec["answer_len"]) * spec["vocab"]
    full_logits = 10 * 4 * btv if side == "trl" else 0
    return 1024 + (weights + training + full_logits) / 2**20


def wait_for_memory(side: str, spec: dict[str, Any], patience_s: float) -> None:
    """Start a worker only when the machine has the memory it will need; wait up to `patience_s` for it."""
    import psutil

    need = memory_needed_mb(side, spec)
    deadline = time.monotonic() + patience_s
    while (available := psutil.virtual_memory().available / 2**20) < need:
        if time.monotonic() >= deadline:
            raise SystemExit(
                f"the {side} worker needs about {need:.0f} MB but only {available:.0f} MB are available; free memory, "
                "use smaller sizes, or pass --memory-wait with more seconds (--memory-wait -1 skips this check)"
            )
        log(f"waiting for memory: the {side} worker needs ~{need:.0f} MB, {available:.0f} MB available")
        time.sleep(min(15.0, max(deadline - time.monotonic(), 0.1)))


def run_worker(side: str, spec_path: Path, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    threads, timeout = args.threads, args.timeout
    if args.memory_wait >= 0:
        wait_for_memory(side, json.loads(spec_path.read_text("utf-8")), args.memory_wait)
    out = folder / f"{side}-result.json"
    out.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRL_EXPERIMENTAL_SILENCE="1",
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES="",  # both sides on the CPU (accelerate would otherwise pick a GPU for qadistill)
    )
    log(f"running the {side} worker")
    started = time.perf_counter()
    # the worker's stdout (libraries print there) goes to our stderr: our stdout carries only the JSON line
    proc = subprocess.Popen([sys.executable, str(WORKER), side, str(spec_path), str(out)], stdout=2, env=env)
    try:
        returncode = proc.wait(timeout=timeout)
    finally:  # timeout, Ctrl-C or SIGTERM: the worker ends with us (it defers SIGTERM to a step's end, so kill)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if returncode != 0 or not out.is_file():
        raise SystemExit(f"the {side} worker failed (exit status {returncode}); see its output above")
    log(f"{side} worker done in {time.perf_counter() - started:.1f} s")
    return json.loads(out.read_text("utf-8"))


def _ratios(ours: dict[str, Any], trl: dict[str, Any]) -> dict[str, float]:
    """Speed (tokens/s, CPU time) and memory (peak RSS, step's own memory) of one qadistill side against TRL."""
    return {
        "tokens_per_s": round(ours["tokens_per_s"] / trl["tokens_per_s"], 2),
        "cpu_s_speedup": round(trl["cpu_s"] / ours["cpu_s"], 2),
        "peak_rss": round(ours["peak_rss_mb"] / trl["peak_rss_mb"], 4),
        "peak_delta": round(ours["peak_delta_mb"] / trl["peak_delta_mb"], 4),
    }


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run as is; several: median step time (and what follows from it), the highest peak RSS."""
    if len(runs) == 1:
        return runs[0]
    result = dict(runs[-1])
    result["step_s"] = round(statistics.median(r["step_s"] for r in runs), 4)
    result["tokens_per_s"] = round(runs[0]["tokens_per_step"] / result["step_s"], 1)
    result["iteration_s"] = round(statistics.median(r["iteration_s"] for r in runs), 4)
    result["cpu_s"] = round(statistics.median(r["cpu_s"] for r in runs), 4)
    for key in ("peak_rss_mb", "baseline_rss_mb", "peak_delta_mb"):
        result[key] = max(r[key] for r in runs)
    result["step_times_s"] = [t for r in runs for t in r["step_times_s"]]
    result["runs_step_s"] = [r["step_s"] for r in runs]
    return result


def paired_ratios(ours: dict[str, Any], trl: dict[str, Any]) -> dict[str, float] | None:
    """Tokens/s ratio of each repeat (its two sides ran back to back): steadier than the ratio of the medians when
    the machine's speed drifts over a long run. None for a single repeat."""
    pairs = [t / o for o, t in zip(ours.get("runs_step_s", []), trl.get("runs_step_s", []), strict=True)]
    if len(pairs) < 2:
        return None
    return {"median": round(statistics.median(pairs), 2), "min": round(min(pairs), 2), "max": round(max(pairs), 2)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=320)
    parser.add_argument("--answer-len", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=151_936, help="embedding rows of both models (Qwen2.5's)")
    parser.add_argument("--teacher-hidden", type=int, default=256)
    parser.add_argument("--teacher-layers", type=int, default=4)
    parser.add_argument("--teacher-heads", type=int, default=4)
    parser.add_argument("--student-hidden", type=int, default=128)
    parser.add_argument("--student-layers", type=int, default=2)
    parser.add_argument("--student-heads", type=int, default=4)
    parser.add_argument("--divergence", choices=["reverse_kl", "forward_kl", "jsd"], default="reverse_kl")
    parser.add_argument("--jsd-beta", type=float, default=0.5, help="with --divergence jsd (GKD's beta)")
    parser.add_argument("--warmup", type=int, default=2, help="steps not timed")
    parser.add_argument("--steps", type=int, default=4, help="timed steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="run each side this often, alternating")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--tokenizer-dir", default=None, help="Qwen2.5 tokenizer folder (default: shared data)")
    parser.add_argument("--synthetic-tokens", action="store_true", help="random ids and a stand-in tokenizer")
    parser.add_argument("--sides", default="qadistill,trl", help="comma-separated subset of qadistill,trl")
    parser.add_argument(
        "--with-cache",
        action="store_true",
        help="also time qadistill distilling from its teacher-logit cache (built by an untimed first run)",
    )
    parser.add_argument("--cache-k", type=int, default=64, help="top-k of the teacher cache")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per worker")
    parser.add_argument(
        "--memory-wait",
        type=float,
        default=600,
        help="seconds to wait for enough free memory before a worker starts, then give up; -1: no check",
    )
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.answer_len < 2 or args.repeats < 1:
        parser.error("need --warmup >= 1, --steps >= 1, --answer-len >= 2 and --repeats >= 1")
    if not 0 < args.jsd_beta < 1:
        parser.error("--jsd-beta must be in (0, 1)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up the worker, temp files
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or set(sides) - {"qadistill", "trl"} or len(set(sides)) != len(sides):
        raise SystemExit("--sides takes qadistill, trl or both")
    gkd_beta = args.jsd_beta if args.divergence == "jsd" else GKD_BETA[args.divergence]
    load_start = os.getloadavg()[0]
    if load_start + args.threads > (os.cpu_count() or 1) and args.threads > 1:
        log(
            f"load average {load_start:.1f} on {os.cpu_count()} CPUs: with --threads {args.threads} every small op "
            "waits for a descheduled OpenMP thread, which penalises the side with many small ops (qadistill); "
            "--threads 1 measures the work more faithfully on a busy machine"
        )
    with tempfile.TemporaryDirectory(prefix="distill-step-") as tmp:
        folder = Path(tmp)
        log("building and saving the tiny teacher and student")
        spec = build_models(args, folder)
        spec.update(
            batch_size=args.batch_size,
            prompt_len=args.prompt_len,
            answer_len=args.answer_len,
            warmup=args.warmup,
            steps=args.steps,
            threads=args.threads,
            lr=args.lr,
            weight_decay=0.01,
            divergence=args.divergence,
            jsd_beta=args.jsd_beta,
            vocab=args.vocab,
            gkd_beta=gkd_beta,
            trl_optim="adamw_torch_fused" if project_adamw_is_fused() else "adamw_torch",
            cache_dir=str(folder / "teacher-cache"),
            cache_k=args.cache_k,
        )
        spec_path = folder / "spec.json"
        spec_path.write_text(json.dumps(spec), "utf-8")
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        if args.with_cache:  # builds the cache (one teacher pass over the rows); not timed
            run_worker("qadistill_cached", spec_path, folder, args)
            sides.append("qadistill_cached")
            runs["qadistill_cached"] = []
        for i in range(args.repeats):
            order = sides if i % 2 == 0 else sides[::-1]
            for side in order:
                runs[side].append(run_worker(side, spec_path, folder, args))

    result: dict[str, Any] = {side: combine(r) for side, r in runs.items()}
    if "qadistill" in result and "trl" in result:
        ours, trl = result["qadistill"], result["trl"]
        result["ratio"] = {
            **_ratios(ours, trl),
            "tokens_per_s_paired": paired_ratios(ours, trl),
            "first_loss_rel_diff": _rel_diff(ours["losses"][0], trl["losses"][0]),
            "targets_met": {
                "tokens_per_s_at_least_20x": ours["tokens_per_s"] >= 20 * trl["tokens_per_s"],
                "peak_rss_at_most_1_6": ours["peak_rss_mb"] * 6 <= trl["peak_rss_mb"],
            },
        }
    if "qadistill_cached" in result and "trl" in result:
        result["ratio_cached"] = _ratios(result["qadistill_cached"], result["trl"])
    result["setup"] = {
        "batch_size": args.batch_size,
        "prompt_len": args.prompt_len,
        "answer_len": args.answer_len,
        "vocab": args.vocab,
        "shared_vocab": spec["shared_vocab"],
        "tokenizer": spec["tokenizer"],
        "models": spec["models"],
        "divergence": f"qadistill {args.divergence} = GKD generalized JSD with beta {gkd_beta}",
        "dtype": "float32",
        "device": "cpu",
        "threads": args.threads,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "teacher_cache_k": args.cache_k if args.with_cache else None,
        "versions": {p: version(p) for p in ("torch", "transformers", "trl", "accelerate")},
    }
    print(json.dumps(result))


def _rel_diff(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round(abs(a - b) / max(abs(a), abs(b), 1e-12), 6)


if __name__ == "__main__":
    main()
