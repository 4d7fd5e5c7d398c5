"""Evaluation in three separate steps: prompts -> model generations -> pure scoring.

`predict` is the only step that touches a model; `score_predictions` is pure and is what `qadistill score`
and the report reuse, so a predictions file can always be rescored without a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from qadistill.config import DataConfig, GenerationConfig, ModelLoadConfig, PromptConfig, Strict
from qadistill.data.examples import QAExample
from qadistill.data.prepare import PreparedData, prepare_data, prompt_format
from qadistill.data.splits import save_split_ids
from qadistill.errors import QADistillError
from qadistill.generation import generate_answers
from qadistill.io import atomic_write_json, atomic_write_text, ensure_dir
from qadistill.metrics import Dataset, abstention_scores, aggregate, score_question
from qadistill.prompts import PromptFormat, build_prompt, choose_demonstration, fit_to_context, postprocess_generation
from qadistill.tokenize import prompt_ids


@dataclass(frozen=True)
class Prediction:
    """One question's prompt, the model's raw generation and the extracted answer."""

    id: str
    prompt: str
    generation: str
    answer: str
    golds: tuple[str, ...]


def build_prompts(
    examples: Sequence[QAExample], fmt: PromptFormat, tokenizer, demo_pool: Sequence[QAExample], seed: int
) -> list[str]:
    """Evaluation prompts; one-shot demonstrations are drawn per (seed, question) from the held-out pool."""
    prompts = []
    for example in examples:
        demo = choose_demonstration(example, demo_pool, seed) if fmt.shots == 1 else None
        prompts.append(build_prompt(example, fmt, tokenizer, demo))
    return prompts


def predict(
    model,
    tokenizer,
    examples: Sequence[QAExample],
    fmt: PromptFormat,
    demo_pool: Sequence[QAExample],
    seed: int,
    settings: GenerationConfig,
    *,
    progress: bool = True,
) -> list[Prediction]:
    """Generate an answer for every example (greedy, batched), prompts fitted to the model's context."""
    from qadistill.models import context_length

    window = context_length(model, tokenizer)
    fmt, prompts = evaluation_prompts(examples, fmt, tokenizer, demo_pool, seed, window, settings.max_new_tokens)
    raw = generate_answers(model, tokenizer, prompts, settings, progress=progress)
    return [
        Prediction(ex.id, prompt, gen, postprocess_generation(gen, fmt), tuple(ex.gold_texts))
        for ex, prompt, gen in zip(examples, prompts, raw, strict=True)
    ]


def evaluation_prompts(
    examples: Sequence[QAExample],
    fmt: PromptFormat,
    tokenizer,
    demo_pool: Sequence[QAExample],
    seed: int,
    window: int | None,
    max_new_tokens: int,
) -> tuple[PromptFormat, list[str]]:
    """The prompt format fitted to a model's context of `window` tokens and the exact prompt strings `predict`
    feeds it (also what `qadistill export-lm-eval` writes, so lm-evaluation-harness sees the same text)."""
    fmt = fit_to_context(fmt, window, max_new_tokens + 1)  # + a BOS that `prompt_ids` may add
    prompts = build_prompts(examples, fmt, tokenizer, demo_pool, seed)
    if window is not None:
        check_prompt_lengths(examples, prompts, tokenizer, window - max_new_tokens)
    return fmt, prompts


def check_prompt_lengths(examples: Sequence[QAExample], prompts: Sequence[str], tokenizer, limit: int) -> None:
    """Refuse a prompt that is still longer than `limit` tokens after its context was cut (a very long question or
    demonstration): the model would read it past its trained positions and answer garbage without a word."""
    for example, prompt in zip(examples, prompts, strict=True):
        n = len(prompt_ids(tokenizer, prompt))
        if n > limit:
            raise QADistillError(
                f"question {example.id!r}: its prompt has {n} tokens even with the context cut, more than the "
                f"{limit} the model's context leaves beside the answer (shorten the answer length or the question)"
            )


def score_predictions(predictions: Sequence[Prediction], *, scorer: Dataset, lang: str) -> tuple[list[dict], dict]:
    """Per-question score rows and the aggregate (official keys, 0-100, plus rouge_l, the abstention rate and the
    always-abstain baseline on the same questions)."""
    scored = [score_question(p.id, p.golds, p.answer, dataset=scorer, lang=lang) for p in predictions]
    rows = [
        {
            "id": p.id,
            "prompt": p.prompt,
            "generation": p.generation,
            "answer": p.answer,
            "golds": list(p.golds),
            "scores": {"exact_match": s.exact_match, "f1": s.f1, "rouge_l": s.rouge_l},
        }
        for p, s in zip(predictions, scored, strict=True)
    ]
    return rows, {**aggregate(scored), **abstention_scores(scored, dataset=scorer, lang=lang)}


def write_results(out_dir: Path, rows: Sequence[dict], metrics: dict) -> None:
    """`predictions.jsonl` then `metrics.json`, each atomically: a metrics file always has its predictions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_json(out_dir / "metrics.json", metrics)


@dataclass(frozen=True)
class EvalQuestions:
    """The questions of one evaluation, how they are asked (the prompt format, and the one-shot demonstration
    pool with the seed that draws from it) and the official scorer that grades their answers."""

    examples: Sequence[QAExample]
    fmt: PromptFormat
    demo_pool: Sequence[QAExample]
    seed: int
    scorer: Dataset

    @classmethod
    def from_data(cls, data: PreparedData, split: str, prompt: PromptConfig, seed: int) -> EvalQuestions:
        """One split of a prepared dataset, prompted as `prompt` says (demonstrations from its demo pool)."""
        examples = data.split(split)
        fmt = prompt_format(data, prompt)
        demo_pool = data.split("demo_pool") if fmt.shots == 1 else []
        return cls(examples, fmt, demo_pool, seed, data.scorer)


def evaluate_examples(
    model,
    tokenizer,
    questions: EvalQuestions,
    settings: GenerationConfig,
    *,
    out_dir: Path,
    metadata: dict | None = None,
    progress: bool = True,
) -> dict:
    """Predict, score and write the results of one (model, split, prompt format, seed); returns the metrics."""
    q, fmt = questions, questions.fmt
    started = time.perf_counter()
    predictions = predict(model, tokenizer, q.examples, fmt, q.demo_pool, q.seed, settings, progress=progress)
    seconds = time.perf_counter() - started
    rows, metrics = score_predictions(predictions, scorer=q.scorer, lang=fmt.lang)
    metrics = {
        **metrics,
        "scorer": q.scorer,
        "lang": fmt.lang,
        "shots": fmt.shots,
        "seed": q.seed,
        "generation_seconds": round(seconds, 3),
        "questions_per_second": round(len(q.examples) / seconds, 3) if seconds > 0 else None,
        **(metadata or {}),
    }
    write_results(out_dir, rows, metrics)
    return metrics


class EvaluationJob(Strict):
    """Everything `qadistill evaluate` needs: which model, which questions, how to prompt and decode (a YAML job
    with `--config` and `key=value` overrides, like training jobs)."""

    model: str
    out_dir: Path
    data: DataConfig = DataConfig()
    prompt: PromptConfig = PromptConfig()
    generation: GenerationConfig = GenerationConfig()
    load: ModelLoadConfig = ModelLoadConfig()
    split: Literal["train", "validation", "test"] = "validation"
    seed: int = Field(0, ge=0)


def run_evaluation(job: EvaluationJob, *, progress: bool = True) -> dict:
    """Load data and model, evaluate one split, and save metrics, predictions, split ids and the job itself."""
    from qadistill.models import load_model_and_tokenizer

    data = prepare_data(job.data)
    questions = EvalQuestions.from_data(data, job.split, job.prompt, job.seed)
    ensure_dir(job.out_dir)  # an unusable --out fails before the model is loaded
    model, tokenizer = load_model_and_tokenizer(
        job.model,
        dtype=job.load.dtype,
        allow_pickle=job.load.allow_pickle,
        trust_remote_code=job.load.trust_remote_code,
    )
    save_split_ids(data.splits, job.out_dir / "split_ids.json")
    atomic_write_json(job.out_dir / "job.json", job_to_dict(job))
    settings = job.generation
    metadata = {"model": job.model, "dataset": data.info.name, "split": job.split}
    return evaluate_examples(
        model, tokenizer, questions, settings, out_dir=job.out_dir, metadata=metadata, progress=progress
    )


def job_to_dict(job: EvaluationJob) -> dict:
    """The resolved job as JSON-ready data, saved with every evaluation (where it was written is not part of it)."""
    return job.model_dump(mode="json", exclude={"out_dir"})
