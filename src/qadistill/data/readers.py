"""Read SQuAD v2.0 and MLQA v1 JSON files into validated `QAExample`s.

Both datasets use the SQuAD layout (data -> paragraphs -> qas -> answers). Every problem a user can fix
(missing file, bad encoding, malformed JSON, wrong schema, duplicate ids) is a one-line `QADistillError` that
names the file and, for schema problems, the JSON location. Every question is kept, whatever its offsets: the
official scorers use the answer texts only. An `answer_start` that does not point at its text (or rejected with
`strict=True`) is corrected to the nearest place the text occurs in the context, or set to None when the text is
not in the context at all; such answers still count for scoring but give no span to train on
(`examples.with_training_spans`). One warning per file counts both.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qadistill.data.examples import Answer, QAExample
from qadistill.errors import QADistillError

logger = logging.getLogger("qadistill.data")

DatasetKind = Literal["squad_v2", "mlqa"]

# MLQA files are named like `dev-context-de-question-en.json`: the context language decides `lang`.
_MLQA_NAME = re.compile(r"context-([A-Za-z]{2,3})-question-([A-Za-z]{2,3})")


@dataclass
class OffsetCheck:
    """The answer-offset check of one source (`source` names it in messages, `lang` is its language, `strict`
    makes a wrong offset an error) and what it found: offsets corrected, and answers not found in their context."""

    source: str
    lang: str
    strict: bool = False
    corrected: int = 0
    not_found: int = 0


def infer_lang(path: Path) -> str:
    """The context language of an MLQA file name (`dev-context-de-question-de.json` -> "de"), else "en"."""
    match = _MLQA_NAME.search(Path(path).name)
    return match.group(1).lower() if match else "en"


def _fail(source: str, where: str, problem: str) -> QADistillError:
    location = f" {where}:" if where else ""
    return QADistillError(f"{source}:{location} {problem}")


def load_json_file(path: Path) -> Any:
    """Parse a UTF-8 JSON file, turning every OS, encoding and syntax problem into a one-line error."""
    path = Path(path)
    if not path.exists():
        raise QADistillError(f"{path}: no such file")
    if path.is_dir():
        raise QADistillError(f"{path}: is a folder, expected a JSON file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise QADistillError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if not raw.strip():
        raise QADistillError(f"{path}: the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise QADistillError(f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise QADistillError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise QADistillError(f"{path}: malformed JSON: nested too deeply") from None


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], source: str, where: str) -> Any:
    if key not in obj:
        raise _fail(source, where, f"missing key '{key}'")
    value = obj[key]
    # bool is an int subclass: `"answer_start": true` must not pass as offset 1.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise _fail(source, where, f"'{key}' must be {_type_name(kind)}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _iter_questions(doc: Any, source: str) -> Iterator[tuple[str, str, Mapping[str, Any], str]]:
    """Yield (article title, paragraph context, question object, its JSON location), structure checked."""
    if not isinstance(doc, dict):
        raise _fail(source, "", f"top level must be an object with key 'data', got {type(doc).__name__}")
    articles = _get(doc, "data", list, source, "")
    for a_idx, article in enumerate(articles):
        a_where = f"data[{a_idx}]"
        if not isinstance(article, dict):
            raise _fail(source, a_where, f"must be an object, got {type(article).__name__}")
        title = article.get("title", f"{Path(source).name}#article{a_idx}")
        if not isinstance(title, str):
            raise _fail(source, a_where, f"'title' must be a string, got {type(title).__name__}")
        paragraphs = _get(article, "paragraphs", list, source, a_where)
        for p_idx, paragraph in enumerate(paragraphs):
            p_where = f"{a_where}.paragraphs[{p_idx}]"
            if not isinstance(paragraph, dict):
                raise _fail(source, p_where, f"must be an object, got {type(paragraph).__name__}")
            context = _get(paragraph, "context", str, source, p_where)
            qas = _get(paragraph, "qas", list, source, p_where)
            for q_idx, qa in enumerate(qas):
                q_where = f"{p_where}.qas[{q_idx}]"
                if not isinstance(qa, dict):
                    raise _fail(source, q_where, f"must be an object, got {type(qa).__name__}")
                yield title, context, qa, q_where


def _answer_ok(context: str, text: str, start: int) -> bool:
    return bool(text) and 0 <= start and context[start : start + len(text)] == text


def _locate(context: str, text: str, start: int) -> int | None:
    """Where `text` occurs in `context` nearest to `start` (None: nowhere, or an empty text)."""
    if not text:
        return None
    found, at = None, context.find(text)
    while at != -1:
        if found is None or abs(at - start) < abs(found - start):
            found = at
        at = context.find(text, at + 1)
    return found


def build_example(
    check: OffsetCheck,
    *,
    qid: str,
    title: str,
    context: str,
    question: str,
    answers: list[tuple[str, int]],
    impossible: bool,
    where: str,
) -> QAExample:
    """Check one question's answers against its context, correcting wrong offsets (see the module docstring).

    Shared by the file reader and the Hugging Face hub converter so both apply identical rules.
    """
    lang, source = check.lang, check.source
    if impossible:
        return QAExample(id=qid, title=title, context=context, question=question, answers=(), lang=lang)
    if not answers:
        raise _fail(source, where, f"question '{qid}' has no answers and is not marked is_impossible")
    kept: list[Answer] = []
    for a_idx, (text, start) in enumerate(answers):
        if _answer_ok(context, text, start):
            kept.append(Answer(text=text, start=start))
            continue
        if check.strict:
            found = context[max(start, 0) : max(start, 0) + len(text)]
            raise _fail(
                source,
                where,
                f"answer {a_idx} of question '{qid}' does not match the context at answer_start={start} "
                f"(text {text[:60]!r}, context has {found[:60]!r})",
            )
        located = _locate(context, text, start)
        if located is None:
            check.not_found += 1
        else:
            check.corrected += 1
        kept.append(Answer(text=text, start=located))
    return QAExample(id=qid, title=title, context=context, question=question, answers=tuple(kept), lang=lang)


def warn_offsets(check: OffsetCheck) -> None:
    """One warning per source, so a file with many bad offsets does not flood the log; it says what was done."""
    if check.corrected or check.not_found:
        logger.warning(
            "%s: %d answer(s) have an answer_start that does not point at their text: %d corrected to where the "
            "text occurs in the context, %d not found in the context (still scored, not used as training spans); "
            "every question is kept",
            check.source,
            check.corrected + check.not_found,
            check.corrected,
            check.not_found,
        )


def read_qa_file(path: Path, *, lang: str | None = None, strict: bool = False) -> list[QAExample]:
    """Read an official SQuAD v2.0 or MLQA v1 JSON file.

    `lang` defaults to the context language in an MLQA file name, else "en". Unanswerable SQuAD v2 questions
    get `answers=()`; answerable ones keep every gold answer as given (duplicates included: the scorer takes
    the max). Wrong `answer_start`s are corrected or cleared with one warning (an error when `strict`).
    """
    path = Path(path)
    doc = load_json_file(path)
    source = str(path)
    check = OffsetCheck(source, lang or infer_lang(path), strict)
    seen: dict[str, str] = {}
    examples: list[QAExample] = []
    for title, context, qa, q_where in _iter_questions(doc, source):
        qid = _get(qa, "id", str, source, q_where)
        if qid in seen:
            raise _fail(source, q_where, f"duplicate question id '{qid}' (first at {seen[qid]})")
        seen[qid] = q_where
        question = _get(qa, "question", str, source, q_where)
        raw_answers = _get(qa, "answers", list, source, q_where)
        impossible = False
        if "is_impossible" in qa:
            impossible = qa["is_impossible"]
            if not isinstance(impossible, bool):
                raise _fail(source, q_where, f"'is_impossible' must be true or false, got {type(impossible).__name__}")
        answers: list[tuple[str, int]] = []
        if not impossible:  # an unanswerable question's `answers` (normally []) carry no gold span
            for a_idx, ans in enumerate(raw_answers):
                a_where = f"{q_where}.answers[{a_idx}]"
                if not isinstance(ans, dict):
                    raise _fail(source, a_where, f"must be an object, got {type(ans).__name__}")
                answers.append(
                    (_get(ans, "text", str, source, a_where), _get(ans, "answer_start", int, source, a_where))
                )
        example = build_example(
            check,
            qid=qid,
            title=title,
            context=context,
            question=question,
            answers=answers,
            impossible=impossible,
            where=q_where,
        )
        examples.append(example)
    warn_offsets(check)
    return examples


def detect_dataset_kind(path: Path) -> DatasetKind:
    """ "squad_v2" if any question carries `is_impossible` (the SQuAD v2 marker), else "mlqa"."""
    path = Path(path)
    doc = load_json_file(path)
    for _title, _context, qa, _where in _iter_questions(doc, str(path)):
        if "is_impossible" in qa:
            return "squad_v2"
    return "mlqa"
