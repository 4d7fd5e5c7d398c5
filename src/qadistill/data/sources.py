"""Named datasets and where their examples come from: local files, the Hugging Face hub, or the package.

Lookup order for `load_examples(name, data_dir)`:

1. `demo-en` / `demo-de` are tiny SQuAD v2-format files shipped inside the package (`qadistill/resources`).
2. Local files under `data_dir` (CLI `--data-dir`, else `$QADISTILL_DATA_DIR`). Each dataset lists its files
   relative to the data dir; every listed file that exists is read and the questions are pooled (the caller
   splits the pool by article). For SQuAD v2 each role has one file: the official full file
   (`squad_v2/train-v2.0.json`, `squad_v2/dev-v2.0.json`) when present, else the subset file shipped in the
   shared data (`train-v2.0.first-11-articles.json`, `dev-v2.0.labelled-half.json`). The subsets are cut from
   the full files, so reading both would duplicate articles under different question ids.
3. Otherwise the Hugging Face hub via `datasets.load_dataset` (all the dataset's hub splits, pooled). When the
   hub is off (`HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE`), unreachable, or `datasets` fails, the error says
   where local files were looked for and how to point at them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from qadistill.data.examples import QAExample
from qadistill.data.readers import DatasetKind, OffsetCheck, build_example, read_qa_file, warn_offsets
from qadistill.errors import QADistillError

logger = logging.getLogger("qadistill.data")

DATA_DIR_ENV = "QADISTILL_DATA_DIR"
_OFFLINE_ENVS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class DatasetInfo:
    """One named dataset.

    `local_files` are paths relative to the data dir, each read when present. `full_files` maps an official
    full file to the subset file in `local_files` it replaces when present. `resource` names a file shipped
    in `qadistill/resources` (demo data); such datasets have no local or hub source. `dev_files` (file names)
    and `dev_hub_splits` mark the official dev data, the rest being training data (`splits.eval_from: dev`).
    """

    name: str
    kind: DatasetKind
    lang: str
    local_files: tuple[str, ...] = ()
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: tuple[str, ...] = ()
    full_files: tuple[tuple[str, str], ...] = ()
    resource: str | None = None
    dev_files: tuple[str, ...] = ()
    dev_hub_splits: tuple[str, ...] = ()


def _mlqa(lang: str) -> DatasetInfo:
    return DatasetInfo(
        name=f"mlqa-{lang}",
        kind="mlqa",
        lang=lang,
        local_files=(
            f"mlqa/dev-context-{lang}-question-{lang}.json",
            f"mlqa/test-context-{lang}-question-{lang}.json",
        ),
        hub_id="facebook/mlqa",
        hub_config=f"mlqa.{lang}.{lang}",
        hub_splits=("validation", "test"),
        dev_files=(f"dev-context-{lang}-question-{lang}.json", f"test-context-{lang}-question-{lang}.json"),
        dev_hub_splits=("validation", "test"),
    )


DATASETS: Mapping[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="squad_v2",
            kind="squad_v2",
            lang="en",
            local_files=(
                "squad_v2/train-v2.0.first-11-articles.json",
                "squad_v2/dev-v2.0.labelled-half.json",
            ),
            hub_id="rajpurkar/squad_v2",
            hub_config=None,
            hub_splits=("train", "validation"),
            full_files=(
                ("squad_v2/train-v2.0.json", "squad_v2/train-v2.0.first-11-articles.json"),
                ("squad_v2/dev-v2.0.json", "squad_v2/dev-v2.0.labelled-half.json"),
            ),
            dev_files=("dev-v2.0.json", "dev-v2.0.labelled-half.json"),
            dev_hub_splits=("validation",),
        ),
        _mlqa("en"),
        _mlqa("de"),
        DatasetInfo(name="demo-en", kind="squad_v2", lang="en", resource="demo_qa_en.json"),
        DatasetInfo(name="demo-de", kind="squad_v2", lang="de", resource="demo_qa_de.json"),
    )
}


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def get_dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise QADistillError(f"unknown dataset {name!r}; valid names: {', '.join(dataset_names())}") from None


def resolve_data_dir(cli_value: str | Path | None) -> Path | None:
    """The data dir from the CLI option, else `$QADISTILL_DATA_DIR`, else None (hub or demo data only).

    A dir that is given but does not exist is an error: silently falling back to the hub would hide a typo.
    """
    if cli_value is not None and str(cli_value) != "":
        origin, path = "--data-dir", Path(cli_value).expanduser()
    elif os.environ.get(DATA_DIR_ENV):
        origin, path = DATA_DIR_ENV, Path(os.environ[DATA_DIR_ENV]).expanduser()
    else:
        return None
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "no such folder"
        raise QADistillError(f"data dir {path} (from {origin}): {problem}")
    return path


def candidate_paths(info: DatasetInfo, data_dir: Path) -> list[Path]:
    """Every local path this dataset looks for, in lookup order (full official files first)."""
    full = [data_dir / f for f, _subset in info.full_files]
    return full + [data_dir / f for f in info.local_files]


def local_paths(info: DatasetInfo, data_dir: Path | None) -> list[Path]:
    """The local files to read: each listed file present, an official full file replacing its subset."""
    if data_dir is None:
        return []
    replacement = {subset: full for full, subset in info.full_files}
    found: list[Path] = []
    for rel in info.local_files:
        full = replacement.get(rel)
        if full is not None and (data_dir / full).is_file():
            found.append(data_dir / full)
        elif (data_dir / rel).is_file():
            found.append(data_dir / rel)
    return found


@dataclass(frozen=True)
class SourcePart:
    """The examples of one source (a file or a hub split); `dev` when it is the dataset's official dev data."""

    source: str
    dev: bool
    examples: list[QAExample]


def load_examples(name: str, data_dir: Path | None, *, strict: bool = False) -> list[QAExample]:
    """All examples of dataset `name`, pooled over its files or hub splits (see the module docstring)."""
    return [ex for part in load_parts(name, data_dir, strict=strict) for ex in part.examples]


def load_parts(name: str, data_dir: Path | None, *, strict: bool = False) -> list[SourcePart]:
    """The examples of dataset `name` source by source, question ids unique across sources."""
    info = get_dataset_info(name)
    if info.resource is not None:
        return [SourcePart(info.resource, False, _load_resource(info, strict=strict))]
    paths = local_paths(info, data_dir)
    if paths:
        logger.info("dataset %r: reading %s", name, ", ".join(str(p) for p in paths))
        parts = [
            SourcePart(str(p), p.name in info.dev_files, read_qa_file(p, lang=info.lang, strict=strict)) for p in paths
        ]
    else:
        parts = _load_from_hub(info, data_dir, strict=strict)
    _check_unique_across(name, parts)
    return parts


def _check_unique_across(name: str, parts: list[SourcePart]) -> None:
    """Refuse an id found in two sources (split id files must be unambiguous)."""
    origin: dict[str, str] = {}
    for part in parts:
        for ex in part.examples:
            if ex.id in origin:
                raise QADistillError(
                    f"dataset {name!r}: question id {ex.id!r} appears in both {origin[ex.id]} and {part.source}"
                )
            origin[ex.id] = part.source


def _load_resource(info: DatasetInfo, *, strict: bool) -> list[QAExample]:
    assert info.resource is not None
    res = resources.files("qadistill").joinpath("resources", info.resource)
    if not res.is_file():
        raise QADistillError(
            f"dataset {info.name!r}: packaged file qadistill/resources/{info.resource} is missing (reinstall qadistill)"
        )
    with resources.as_file(res) as path:
        return read_qa_file(path, lang=info.lang, strict=strict)


def _hub_offline_reason() -> str | None:
    for var in _OFFLINE_ENVS:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    return None


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def _unavailable(info: DatasetInfo, data_dir: Path | None, reason: str) -> QADistillError:
    if data_dir is None:
        looked = "no data dir given"
    else:
        looked = "looked for " + ", ".join(str(p) for p in candidate_paths(info, data_dir))
    return QADistillError(
        f"dataset {info.name!r}: no local files ({looked}) and the Hugging Face hub is unavailable "
        f"({reason}); pass --data-dir or set {DATA_DIR_ENV}"
    )


def _load_from_hub(info: DatasetInfo, data_dir: Path | None, *, strict: bool) -> list[SourcePart]:
    if info.hub_id is None:
        raise _unavailable(info, data_dir, "this dataset has no hub copy")
    offline = _hub_offline_reason()
    if offline is not None:
        raise _unavailable(info, data_dir, offline)
    parts: list[SourcePart] = []
    for split in info.hub_splits:
        source = f"hub:{info.hub_id}" + (f"/{info.hub_config}" if info.hub_config else "") + f"[{split}]"
        try:
            import datasets  # heavy import, only needed on this path

            rows = datasets.load_dataset(info.hub_id, info.hub_config, split=split)
        except Exception as exc:  # network, auth, missing config, script-only repo: all mean "unavailable"
            raise _unavailable(info, data_dir, _one_line(exc)) from None
        logger.info("dataset %r: loaded %s from the Hugging Face hub", info.name, source)
        examples = rows_to_examples(rows, kind=info.kind, lang=info.lang, strict=strict, source=source)
        parts.append(SourcePart(source, split in info.dev_hub_splits, examples))
    return parts


def _row_field(row: Mapping[str, Any], key: str, kind: type, source: str, where: str) -> Any:
    if key not in row:
        raise QADistillError(f"{source}: {where}: missing column '{key}'")
    value = row[key]
    if not isinstance(value, kind):
        got = type(value).__name__
        raise QADistillError(f"{source}: {where}: '{key}' must be {kind.__name__}, got {got}")
    return value


def rows_to_examples(
    rows: Iterable[Mapping[str, Any]],
    *,
    kind: DatasetKind,
    lang: str,
    strict: bool = False,
    source: str = "hub",
) -> list[QAExample]:
    """Convert hub rows (id, title, context, question, answers{text, answer_start}) to validated examples.

    For SQuAD v2 an empty `answers.text` list marks an unanswerable question (the hub copy has no
    is_impossible column); for MLQA it is an error, as in files. The offset check is the same as for files.
    """
    check = OffsetCheck(source, lang, strict)
    examples: list[QAExample] = []
    seen: set[str] = set()
    for idx, row in enumerate(rows):
        where = f"row {idx}"
        qid = _row_field(row, "id", str, source, where)
        if qid in seen:
            raise QADistillError(f"{source}: {where}: duplicate question id {qid!r}")
        seen.add(qid)
        answers = _row_field(row, "answers", dict, source, where)
        texts = _row_field(answers, "text", list, source, f"{where}.answers")
        starts = _row_field(answers, "answer_start", list, source, f"{where}.answers")
        if len(texts) != len(starts) or not all(isinstance(t, str) for t in texts):
            raise QADistillError(f"{source}: {where}: answers.text and answers.answer_start do not match up")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in starts):
            raise QADistillError(f"{source}: {where}: answers.answer_start must be integers")
        example = build_example(
            check,
            qid=qid,
            title=_row_field(row, "title", str, source, where),
            context=_row_field(row, "context", str, source, where),
            question=_row_field(row, "question", str, source, where),
            answers=list(zip(texts, starts, strict=True)),
            impossible=kind == "squad_v2" and not texts,
            where=where,
        )
        examples.append(example)
    warn_offsets(check)
    return examples
