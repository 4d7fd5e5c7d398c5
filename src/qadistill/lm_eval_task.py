"""Our evaluation as an lm-evaluation-harness task, so any of its backends (hf, vllm, sglang) scores our exact task.

`export_task` writes a folder that lm-eval loads with `--include_path`: the questions of one split with the exact
prompt strings `qadistill evaluate` feeds the model (contexts already cut to the budget, chat template already
applied, one-shot demonstrations already in), a task YAML (greedy `generate_until`, stop at a newline, our answer
length, no few-shot, no target delimiter) and a `utils.py` that scores with our post-processing and
`qadistill.metrics`. The same numbers therefore come out of either harness when the model generates the same
tokens. This module never imports lm-eval: the exported `utils.py` calls the hooks at the bottom.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qadistill.config import DataConfig, PromptConfig
from qadistill.data.prepare import prepare_data, prompt_format
from qadistill.errors import QADistillError
from qadistill.evaluate import evaluation_prompts
from qadistill.io import atomic_dir, atomic_write_text
from qadistill.metrics import QuestionScore, aggregate, score_question
from qadistill.score import TASK_KEY, answer_of

MANIFEST = "qadistill_task.json"
"""Marks a folder as written by `export_task` (only such a folder is ever replaced)."""
QUESTIONS = "questions.jsonl"
METRICS = ("exact", "f1", "rouge_l", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")


@dataclass(frozen=True)
class TaskQuestion:
    """One question as exported: its id, the exact prompt text and the gold answers (none: unanswerable)."""

    id: str
    prompt: str
    golds: tuple[str, ...]


def task_name(dataset: str, split: str, shots: int) -> str:
    """A task name lm-eval accepts: `qadistill_squad_v2_validation_0shot`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"qadistill_{dataset}_{split}_{shots}shot")


def check_target(out_dir: Path) -> None:
    """Refuse to replace anything but an empty folder or one this exporter wrote."""
    if out_dir.is_file() or out_dir.is_symlink():
        raise QADistillError(f"{out_dir} exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise QADistillError(
            f"{out_dir} exists and is not a task folder written by qadistill export-lm-eval (no {MANIFEST}); "
            "choose another --out or delete it"
        )


def export_task(
    out_dir: Path,
    *,
    name: str,
    questions: Sequence[TaskQuestion],
    scorer: str,
    lang: str,
    max_new_tokens: int,
    source: dict[str, Any],
) -> Path:
    """Write the task folder atomically (questions.jsonl, <name>.yaml, utils.py, README.md, the manifest)."""
    out_dir = Path(out_dir)
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise QADistillError(f"task name {name!r} may only have letters, digits and underscores")
    if not questions:
        raise QADistillError("there are no questions to export")
    check_target(out_dir)
    rows = [
        {"id": q.id, "prompt": q.prompt, "golds": list(q.golds), "lang": lang, "scorer": scorer, TASK_KEY: name}
        for q in questions
    ]
    unanswerable = any(not q.golds for q in questions)
    manifest = {
        "task": name,
        "questions": len(rows),
        "scorer": scorer,
        "lang": lang,
        "max_new_tokens": max_new_tokens,
        "metrics": _metric_names(scorer, unanswerable),
        **source,
    }
    with atomic_dir(out_dir) as tmp:
        atomic_write_text(tmp / QUESTIONS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        atomic_write_text(tmp / f"{name}.yaml", _task_yaml(name, max_new_tokens, manifest["metrics"]))
        atomic_write_text(tmp / "utils.py", _UTILS)
        atomic_write_text(tmp / "README.md", _readme(name, manifest))
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return out_dir


def _metric_names(scorer: str, unanswerable: bool) -> list[str]:
    """Every key `qadistill.metrics.aggregate` reports for this split (the NoAns group only where it has questions)."""
    names = ["exact", "f1", "rouge_l", "HasAns_exact", "HasAns_f1"]
    return [*names, "NoAns_exact", "NoAns_f1"] if unanswerable else names


def _task_yaml(name: str, max_new_tokens: int, metrics: Sequence[str]) -> str:
    metric_list = "".join(
        f"  - metric: {m}\n    aggregation: !function utils.{m}\n    higher_is_better: true\n" for m in metrics
    )
    return (
        "# Written by `qadistill export-lm-eval`: the prompts in questions.jsonl are final (chat template, context\n"
        "# cut and one-shot demonstration included). Run without --apply_chat_template, --num_fewshot or\n"
        "# --system_instruction, or the model sees other text than in `qadistill evaluate`.\n"
        f"task: {name}\n"
        "custom_dataset: !function utils.load_docs\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        "doc_to_text: !function utils.doc_to_text\n"
        "doc_to_target: !function utils.doc_to_target\n"
        'target_delimiter: ""\n'
        'fewshot_delimiter: ""\n'
        "num_fewshot: 0\n"
        "generation_kwargs:\n"
        '  until: ["\\n"]\n'
        f"  max_gen_toks: {max_new_tokens}\n"
        "  do_sample: false\n"
        "  temperature: 0.0\n"
        "process_results: !function utils.process_results\n"
        f"metric_list:\n{metric_list}"
        "metadata:\n"
        "  version: 1.0\n"
    )


_UTILS = '''"""lm-evaluation-harness hooks of a task written by `qadistill export-lm-eval` (needs qadistill)."""

from pathlib import Path

from qadistill.lm_eval_task import AGGREGATIONS, doc_to_target, doc_to_text, process_results, read_questions

__all__ = ["doc_to_target", "doc_to_text", "load_docs", "process_results", *AGGREGATIONS]
globals().update(AGGREGATIONS)


def load_docs(**kwargs):
    """The exported questions beside this file, as the task's `test` split."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(read_questions(Path(__file__).parent))})
'''


def _readme(name: str, manifest: dict[str, Any]) -> str:
    return (
        f"# lm-evaluation-harness task `{name}`\n\n"
        f"Written by `qadistill export-lm-eval`: {manifest['questions']} questions, scorer {manifest['scorer']}, "
        f"answers of at most {manifest['max_new_tokens']} tokens. Where the prompts came from is in {MANIFEST}.\n\n"
        "```\n"
        f"lm_eval --model hf --model_args pretrained=MODEL,dtype=float32 --include_path THIS_FOLDER --tasks {name} "
        "--batch_size 32 --log_samples --output_path OUT\n"
        f"lm_eval --model vllm --model_args pretrained=MODEL,dtype=float32 --include_path THIS_FOLDER --tasks {name} "
        "--batch_size auto --log_samples --output_path OUT\n"
        "qadistill score --data OFFICIAL_DATA_FILE.json --predictions OUT/.../samples_"
        f"{name}_*.jsonl\n```\n"
    )


# ------------------------------------------------------------------------------------------------ exporting


def export_from_data(  # noqa: PLR0913  the keyword options of `qadistill export-lm-eval --model`
    out_dir: Path,
    *,
    model: str,
    data: DataConfig,
    prompt: PromptConfig,
    split: str,
    seed: int,
    max_new_tokens: int,
    name: str | None = None,
    trust_remote_code: bool = False,
) -> Path:
    """Export one split the way `qadistill evaluate --model MODEL` would prompt it (the prompts depend on the
    model's tokenizer, chat template and context length; its weights are not loaded)."""
    from qadistill.models import context_length, load_tokenizer

    check_target(Path(out_dir))  # before the data and tokenizer are loaded
    prepared = prepare_data(data)
    examples = prepared.split(split)
    fmt = prompt_format(prepared, prompt)
    demo_pool = prepared.split("demo_pool") if fmt.shots == 1 else []
    tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
    window = context_length(_model_config(model, tokenizer), tokenizer)
    fmt, prompts = evaluation_prompts(examples, fmt, tokenizer, demo_pool, seed, window, max_new_tokens)
    questions = [TaskQuestion(ex.id, p, tuple(ex.gold_texts)) for ex, p in zip(examples, prompts, strict=True)]
    source = {
        "from": "data",
        "model": model,
        "dataset": prepared.info.name,
        "split": split,
        "seed": seed,
        "shots": fmt.shots,
        "prompt_style": prompt.style,
        "max_prompt_tokens": fmt.max_prompt_tokens,
        "data": data.model_dump(mode="json"),
    }
    return export_task(
        Path(out_dir),
        name=name or task_name(prepared.info.name, split, fmt.shots),
        questions=questions,
        scorer=prepared.scorer,
        lang=fmt.lang,
        max_new_tokens=max_new_tokens,
        source=source,
    )


def _model_config(spec: str, tokenizer):
    """The model's transformers config (for its context length) without its weights."""
    from transformers import AutoConfig

    from qadistill.models import get_model_info

    path = Path(spec).expanduser()
    try:
        if path.suffix == ".gguf" and path.is_file():
            return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
        if (Path(tokenizer.name_or_path) / "config.json").is_file():
            return AutoConfig.from_pretrained(tokenizer.name_or_path)
        info = get_model_info(spec)
        return info.config() if info is not None else AutoConfig.from_pretrained(spec)
    except (OSError, ValueError, KeyError) as exc:
        raise QADistillError(
            f"cannot read the config of model {spec!r} (its context length fits the prompts): "
            f"{' '.join(str(exc).split())[:200]}"
        ) from None


def export_from_run(
    run_dir: Path, out_dir: Path, *, name: str | None = None, max_new_tokens: int | None = None
) -> Path:
    """Export the questions and exact prompts of a finished evaluation folder (`qadistill evaluate --out`, or a grid
    run's `.../eval/<split>` stage): its predictions.jsonl holds every prompt as the model saw it."""
    run_dir = Path(run_dir)
    predictions, metrics_file = run_dir / "predictions.jsonl", run_dir / "metrics.json"
    if not (predictions.is_file() and metrics_file.is_file()):
        raise QADistillError(
            f"{run_dir} is not an evaluation folder (it needs predictions.jsonl and metrics.json, as written by "
            "qadistill evaluate or a run's eval stage)"
        )
    metrics = _read_json(metrics_file)
    questions = []
    for lineno, line in enumerate(predictions.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(TaskQuestion(str(row["id"]), str(row["prompt"]), tuple(row["golds"])))
        except (ValueError, KeyError, TypeError):
            raise QADistillError(
                f"{predictions}: line {lineno} is not a prediction with id, prompt and golds"
            ) from None
    job = _read_json(run_dir / "job.json") if (run_dir / "job.json").is_file() else {}
    tokens = max_new_tokens or job.get("generation", {}).get("max_new_tokens")
    if tokens is None:
        raise QADistillError(f"{run_dir} has no job.json with the answer length; pass --max-new-tokens")
    dataset, split, shots = metrics.get("dataset", "qa"), metrics.get("split", "eval"), metrics.get("shots", 0)
    source = {"from": "run", "run": str(run_dir.resolve()), "dataset": dataset, "split": split, "shots": shots}
    source |= {k: metrics[k] for k in ("model", "seed") if k in metrics}
    return export_task(
        Path(out_dir),
        name=name or task_name(dataset, split, shots),
        questions=questions,
        scorer=metrics.get("scorer", "squad_v2"),
        lang=metrics.get("lang", "en"),
        max_new_tokens=int(tokens),
        source=source,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QADistillError(f"{path}: cannot read it as JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise QADistillError(f"{path}: expected a JSON object")
    return doc


# ------------------------------------------------------------------------ hooks called by the exported utils.py


def read_questions(folder: Path) -> list[dict[str, Any]]:
    """The exported question rows of a task folder."""
    lines = (Path(folder) / QUESTIONS).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def doc_to_text(doc: dict[str, Any]) -> str:
    """The prompt exactly as exported: lm-eval adds nothing (no description, delimiter or few-shot examples)."""
    return doc["prompt"]


def doc_to_target(doc: dict[str, Any]) -> str:
    """The first gold answer ("" when unanswerable); shown in lm-eval's samples, never in the prompt."""
    return doc["golds"][0] if doc["golds"] else ""


def process_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, tuple]:
    """Score one generation with `qadistill.metrics`; every metric gets the question's scores, which each
    aggregation below averages exactly as `qadistill evaluate` does."""
    answer = answer_of(doc, results[0])
    s = score_question(doc["id"], doc["golds"], answer, dataset=doc["scorer"], lang=doc["lang"])
    item = (s.qid, list(s.golds), s.prediction, s.exact_match, s.f1, s.rouge_l)
    return dict.fromkeys(METRICS, item)


def _aggregation(key: str) -> Callable[[Sequence[tuple]], float]:
    def aggregate_key(items: Sequence[tuple]) -> float:
        records = [QuestionScore(qid, tuple(golds), answer, em, f1, rl) for qid, golds, answer, em, f1, rl in items]
        return aggregate(records)[key]

    aggregate_key.__name__ = key
    aggregate_key.__doc__ = f"`{key}` of `qadistill.metrics.aggregate` over the task's questions (0-100)."
    return aggregate_key


AGGREGATIONS: dict[str, Callable[[Sequence[tuple]], float]] = {key: _aggregation(key) for key in METRICS}
