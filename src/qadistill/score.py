"""The `score` command: score a predictions file against an official SQuAD v2.0 / MLQA data file.

It scores the given answer texts as they are, the way the official evaluation scripts do, so its numbers can be
compared with published ones. Predictions come as the official JSON object {question id: answer text}, as our
`predictions.jsonl` (one JSON object per line with at least "id" and "answer"), or as lm-evaluation-harness's
`--log_samples` file of a task written by `qadistill export-lm-eval` (its raw generations get our post-processing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qadistill.data.readers import detect_dataset_kind, load_json_file, read_qa_file
from qadistill.errors import QADistillError
from qadistill.metrics import MLQA_LANGS, QuestionScore, abstention_scores, aggregate, score_question
from qadistill.prompts import PromptFormat, postprocess_generation

logger = logging.getLogger("qadistill.score")

TASK_KEY = "qadistill_task"
"""Key in every question `qadistill export-lm-eval` writes: how an lm-eval sample of our task is recognised."""


def read_predictions(path: Path) -> dict[str, str]:
    """Read predictions as {question id: answer text}.

    A `.jsonl` file is read as JSON lines (each an object with string "id" and "answer"); any other file as
    one JSON object mapping ids to answer strings (the official format). Every problem is a one-line
    QADistillError naming the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return _read_jsonl_predictions(path)
    doc = load_json_file(path)
    if not isinstance(doc, dict):
        raise QADistillError(
            f"{path}: predictions must be a JSON object mapping question ids to answer texts, "
            f"got a JSON {_json_type(doc)} (for one object per line, name the file *.jsonl)"
        )
    for qid, answer in doc.items():
        if not isinstance(answer, str):
            raise QADistillError(
                f"{path}: the prediction for question '{qid}' must be a string, got a JSON {_json_type(answer)}"
            )
    return doc


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.exists():
        raise QADistillError(f"{path}: no such file")
    if path.is_dir():
        raise QADistillError(f"{path}: is a folder, expected a JSON lines file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise QADistillError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise QADistillError(f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield lineno, line


def _read_jsonl_predictions(path: Path) -> dict[str, str]:
    preds: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in _jsonl_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QADistillError(f"{path}: line {lineno}: malformed JSON: {exc.msg}") from None
        except RecursionError:
            raise QADistillError(f"{path}: line {lineno}: malformed JSON: nested too deeply") from None
        if not isinstance(obj, dict):
            raise QADistillError(f"{path}: line {lineno}: expected a JSON object, got a JSON {_json_type(obj)}")
        if is_samples_record(obj):
            obj = dict(zip(("id", "answer"), sample_answer(obj, f"{path}: line {lineno}"), strict=True))
        for key in ("id", "answer"):
            if key not in obj:
                raise QADistillError(f"{path}: line {lineno}: missing key '{key}'")
            if not isinstance(obj[key], str):
                raise QADistillError(
                    f"{path}: line {lineno}: '{key}' must be a string, got a JSON {_json_type(obj[key])}"
                )
        qid = obj["id"]
        if qid in preds:
            raise QADistillError(
                f"{path}: line {lineno}: duplicate prediction for question '{qid}' (first on line {first_line[qid]})"
            )
        preds[qid] = obj["answer"]
        first_line[qid] = lineno
    return preds


def is_samples_record(obj: dict[str, Any]) -> bool:
    """Whether a JSON line is one of lm-eval's `--log_samples` records rather than one of our predictions."""
    return "doc_id" in obj and "doc" in obj and ("filtered_resps" in obj or "resps" in obj)


def answer_of(doc: dict[str, Any], generation: str) -> str:
    """Our post-processing of a raw generation for an exported question (first line, stripped, abstain -> "")."""
    return postprocess_generation(generation, PromptFormat(lang=doc.get("lang", "en")))


def sample_answer(obj: dict[str, Any], where: str) -> tuple[str, str]:
    """(question id, answer) of one lm-eval sample of an exported task; another task's sample is refused."""
    doc = obj.get("doc")
    if not isinstance(doc, dict) or TASK_KEY not in doc or not isinstance(doc.get("id"), str):
        raise QADistillError(
            f"{where}: a sample of another lm-eval task (its doc has no {TASK_KEY!r}); only samples of a task "
            "written by qadistill export-lm-eval can be scored"
        )
    responses = obj.get("filtered_resps") or obj.get("resps")
    while isinstance(responses, list) and responses:
        responses = responses[0]
    if not isinstance(responses, str):
        raise QADistillError(f"{where}: the sample of question {doc['id']!r} has no generated text")
    return doc["id"], answer_of(doc, responses)


def _official_golds(path: Path) -> list[tuple[str, list[str]]]:
    """(question id, gold answer texts) in file order, exactly as the official scripts take them.

    The scripts use every entry of `answers` whatever its `answer_start`, so this walks the raw file instead
    of using the examples `read_qa_file` returns (which skips answers whose offset does not match). Called
    after `read_qa_file` has validated the layout.
    """
    doc = load_json_file(path)
    out: list[tuple[str, list[str]]] = []
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                golds: list[str] = []
                for idx, ans in enumerate(qa["answers"]):
                    text = ans.get("text") if isinstance(ans, dict) else None
                    if not isinstance(text, str):
                        raise QADistillError(
                            f"{path}: question '{qa['id']}': answers[{idx}] must be an object with a string 'text'"
                        )
                    golds.append(text)
                out.append((qa["id"], golds))
    return out


def score_files(data_path: Path, predictions_path: Path, *, lang: str | None = None) -> dict[str, float | int]:
    """Score a predictions file against an official-format SQuAD v2.0 or MLQA v1 data file.

    The dataset kind comes from the data file (`is_impossible` present -> SQuAD v2.0 rules, else MLQA rules).
    `lang` is the answer language; by default the context language of an MLQA file name
    (`dev-context-de-question-de.json` -> "de"), else "en".

    Returns the official SQuAD v2.0 report on a 0-100 scale (exact, f1, total, HasAns_*, NoAns_*), rouge_l,
    the abstention rate and the always-abstain baseline (`metrics.abstention_scores`), and `missing`: how many
    questions had no prediction. Like the MLQA and SQuAD v1.1 scripts, a question without a prediction scores 0
    and counts in the totals (the SQuAD v2.0 script prints "Missing prediction for ..." and then fails); a
    warning names the first ones. Predictions for ids not in the data file are ignored, as the official scripts
    do.
    """
    data_path = Path(data_path)
    predictions_path = Path(predictions_path)
    kind = detect_dataset_kind(data_path)
    examples = read_qa_file(data_path, lang=lang)
    if not examples:
        raise QADistillError(f"{data_path}: the data file has no questions to score")
    answer_lang = lang or examples[0].lang
    if kind == "mlqa" and answer_lang not in MLQA_LANGS:
        raise QADistillError(
            f"{data_path}: unknown MLQA answer language '{answer_lang}'; expected one of {', '.join(MLQA_LANGS)}"
        )
    golds = _official_golds(data_path)
    preds = read_predictions(predictions_path)

    records: list[QuestionScore] = []
    missing: list[str] = []
    for qid, gold_texts in golds:
        prediction = preds.get(qid)
        if prediction is None:
            missing.append(qid)
        records.append(score_question(qid, gold_texts, prediction, dataset=kind, lang=answer_lang))
    if len(missing) == len(records):
        raise QADistillError(
            f"{predictions_path}: has no prediction for any of the {len(records)} questions in {data_path} "
            f"(first id there: '{records[0].qid}')"
        )
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        logger.warning(
            "%s: no prediction for %d of %d questions (%s); they score 0",
            predictions_path,
            len(missing),
            len(records),
            shown,
        )
    result = {**aggregate(records), **abstention_scores(records, dataset=kind, lang=answer_lang)}
    result["missing"] = len(missing)
    return result
