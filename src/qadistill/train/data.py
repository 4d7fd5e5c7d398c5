"""A run's data: the split dataset, its prompt format, the encoded training examples and the validation subset."""

from __future__ import annotations

from dataclasses import dataclass, field

from qadistill.data.examples import QAExample, with_training_spans
from qadistill.data.prepare import PreparedData, prepare_data, prompt_format
from qadistill.data.splits import cap, save_split_ids
from qadistill.io import atomic_write_json
from qadistill.prompts import PromptFormat, fit_to_context
from qadistill.train.batching import Batch, TokenizedExample, collate, encode_examples
from qadistill.train.config import Job
from qadistill.train.state import RunPaths


@dataclass
class TrainingData:
    """The split data, the prompt format, the encoded training examples and the fixed validation subset.

    `validation_questions` are the questions behind `validation` (the same order), which validation by
    generation scores; `demo_pool` their one-shot demonstrations.
    """

    prepared: PreparedData
    fmt: PromptFormat
    train: list[TokenizedExample]
    validation: list[TokenizedExample]
    validation_questions: list[QAExample] = field(default_factory=list)
    demo_pool: list[QAExample] = field(default_factory=list)


def load_training_data(job: Job, tokenizer, context_tokens: int | None) -> TrainingData:
    """Split the dataset, build the training prompts and a fixed validation subset (when the run validates).

    The prompt budget is lowered when prompt + answer would not fit `context_tokens` (the model's context).
    """
    cfg = job.train
    prepared = prepare_data(job.data)
    fmt = fit_to_context(prompt_format(prepared, job.prompt), context_tokens, cfg.max_answer_tokens + 1)
    demo_pool = prepared.split("demo_pool") if fmt.shots == 1 else []
    spans = with_training_spans(prepared.split("train"), "training")
    train = encode_examples(spans, fmt, tokenizer, demo_pool, job.seed, cfg.max_answer_tokens)
    questions: list[QAExample] = []
    validation: list[TokenizedExample] = []
    if cfg.validates:
        held_out = cap(prepared.split("validation"), cfg.eval_examples, job.data.splits.seed)
        questions = with_training_spans(held_out, "validation CE")
        validation = encode_examples(questions, fmt, tokenizer, demo_pool, job.seed, cfg.max_answer_tokens)
    return TrainingData(prepared, fmt, train, validation, questions, list(demo_pool))


def write_run_files(job: Job, data: TrainingData, paths: RunPaths) -> None:
    """The job and the question ids of every split, so evaluation can use exactly the held-out questions."""
    paths.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(paths.job, job.model_dump(mode="json"))
    save_split_ids(data.prepared.splits, paths.out_dir / "split_ids.json")


def fixed_batches(items: list[TokenizedExample], batch_size: int, pad_id: int) -> list[Batch]:
    return [collate(items[i : i + batch_size], pad_id) for i in range(0, len(items), batch_size)]
