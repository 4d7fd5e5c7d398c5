"""Readers (SQuAD v2 / MLQA files) and named dataset sources (local files, hub, packaged demo)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from qadistill.config import DataConfig
from qadistill.data import sources
from qadistill.data.examples import Answer
from qadistill.data.prepare import prepare_data
from qadistill.data.readers import detect_dataset_kind, infer_lang, read_qa_file
from qadistill.data.sources import (
    DATASETS,
    dataset_names,
    get_dataset_info,
    load_examples,
    local_paths,
    resolve_data_dir,
    rows_to_examples,
)
from qadistill.errors import QADistillError

CONTEXT = "The Normans were in Normandy in the 10th century."


def qa(qid: str, answers: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    if answers is None:
        answers = [{"text": "Normandy", "answer_start": CONTEXT.index("Normandy")}]
    return {"id": qid, "question": f"Question {qid}?", "answers": answers, **extra}


def doc(*qas: dict[str, Any], title: str = "Normans", context: str = CONTEXT) -> dict[str, Any]:
    return {"version": "v2.0", "data": [{"title": title, "paragraphs": [{"context": context, "qas": list(qas)}]}]}


def write(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def one_line_error(excinfo: pytest.ExceptionInfo[QADistillError], path: Path, *words: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


# --- reading valid files ---------------------------------------------------------------------------------


def test_squad_v2_answerable_and_unanswerable(tmp_path: Path) -> None:
    dup = {"text": "Normandy", "answer_start": 20}
    path = write(
        tmp_path / "dev.json",
        doc(
            qa("a", [dup, dup, {"text": "in Normandy", "answer_start": 17}], is_impossible=False),
            qa("b", [], is_impossible=True, plausible_answers=[{"text": "Normans", "answer_start": 4}]),
        ),
    )
    examples = read_qa_file(path)
    assert [e.id for e in examples] == ["a", "b"]
    a, b = examples
    # every gold answer is kept as given, duplicates included: the scorer takes the max
    assert a.answers == (Answer("Normandy", 20), Answer("Normandy", 20), Answer("in Normandy", 17))
    assert not a.is_impossible and a.title == "Normans" and a.context == CONTEXT and a.lang == "en"
    assert b.answers == () and b.is_impossible
    assert detect_dataset_kind(path) == "squad_v2"


def test_mlqa_language_from_file_name_and_kind(tmp_path: Path) -> None:
    path = write(tmp_path / "dev-context-de-question-en.json", doc(qa("x")))
    assert read_qa_file(path)[0].lang == "de"
    assert read_qa_file(path, lang="es")[0].lang == "es"
    assert read_qa_file(write(tmp_path / "other.json", doc(qa("x"))))[0].lang == "en"
    assert detect_dataset_kind(path) == "mlqa"
    assert infer_lang(Path("test-context-en-question-en.json")) == "en"


def test_missing_title_gets_a_unique_placeholder(tmp_path: Path) -> None:
    obj = doc(qa("a"))
    del obj["data"][0]["title"]
    obj["data"].append({"paragraphs": [{"context": CONTEXT, "qas": [qa("b")]}]})
    titles = {e.title for e in read_qa_file(write(tmp_path / "t.json", obj))}
    assert len(titles) == 2


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc(qa("a"))).encode())
    assert len(read_qa_file(path)) == 1


# --- file-level errors -------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(QADistillError) as excinfo:
        read_qa_file(path)
    one_line_error(excinfo, path, "no such file")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(QADistillError) as excinfo:
        read_qa_file(tmp_path)
    one_line_error(excinfo, tmp_path, "folder")


@pytest.mark.parametrize("content", [b"", b"  \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(content)
    with pytest.raises(QADistillError) as excinfo:
        read_qa_file(path)
    one_line_error(excinfo, path, "empty")


def test_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(doc(qa("a"), title="Köln"), ensure_ascii=False).encode("latin-1"))
    with pytest.raises(QADistillError) as excinfo:
        read_qa_file(path)
    one_line_error(excinfo, path, "UTF-8", "0xf6")


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"data": [\n  {"title": "x",,}\n]}', encoding="utf-8")
    with pytest.raises(QADistillError) as excinfo:
        read_qa_file(path)
    one_line_error(excinfo, path, "malformed JSON", "line 2", "column")


# --- schema errors -----------------------------------------------------------------------------------------


def _drop(obj: dict[str, Any], *keys: str | int) -> dict[str, Any]:
    target: Any = obj
    for key in keys[:-1]:
        target = target[key]
    del target[keys[-1]]
    return obj


SCHEMA_CASES = {
    "no data": (lambda: _drop(doc(qa("a")), "data"), "missing key 'data'"),
    "no paragraphs": (lambda: _drop(doc(qa("a")), "data", 0, "paragraphs"), "data[0]: missing key 'paragraphs'"),
    "no qas": (lambda: _drop(doc(qa("a")), "data", 0, "paragraphs", 0, "qas"), "missing key 'qas'"),
    "no context": (lambda: _drop(doc(qa("a")), "data", 0, "paragraphs", 0, "context"), "missing key 'context'"),
    "no question": (
        lambda: _drop(doc(qa("a")), "data", 0, "paragraphs", 0, "qas", 0, "question"),
        "qas[0]: missing key 'question'",
    ),
    "no id": (lambda: _drop(doc(qa("a")), "data", 0, "paragraphs", 0, "qas", 0, "id"), "missing key 'id'"),
    "no answers": (
        lambda: _drop(doc(qa("a")), "data", 0, "paragraphs", 0, "qas", 0, "answers"),
        "missing key 'answers'",
    ),
    "no answer text": (
        lambda: doc(qa("a", [{"answer_start": 0}])),
        "answers[0]: missing key 'text'",
    ),
    "top level list": (lambda: [doc(qa("a"))], "top level must be an object"),
    "data not list": (lambda: {"data": {"title": "x"}}, "'data' must be a list"),
    "article not object": (lambda: {"data": ["x"]}, "data[0]: must be an object"),
    "title not string": (lambda: doc(qa("a"), title=3), "'title' must be a string"),
    "context not string": (lambda: doc(qa("a"), context=None), "'context' must be a string"),
    "id not string": (lambda: doc(qa(7)), "'id' must be a string, got int"),
    "answers not list": (lambda: doc(qa("a", "Normandy")), "'answers' must be a list"),
    "start not int": (
        lambda: doc(qa("a", [{"text": "Normandy", "answer_start": "20"}])),
        "'answer_start' must be an integer",
    ),
    "start bool": (
        lambda: doc(qa("a", [{"text": "he", "answer_start": True}])),
        "'answer_start' must be an integer, got bool",
    ),
    "impossible not bool": (lambda: doc(qa("a", is_impossible="no")), "'is_impossible' must be true or false"),
    "mlqa without answers": (lambda: doc(qa("a", [])), "question 'a' has no answers and is not marked"),
    "answerable without answers": (
        lambda: doc(qa("a", [], is_impossible=False)),
        "question 'a' has no answers and is not marked",
    ),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_schema_errors(tmp_path: Path, case: str) -> None:
    build, expected = SCHEMA_CASES[case]
    path = write(tmp_path / "schema.json", build())
    with pytest.raises(QADistillError) as excinfo:
        read_qa_file(path)
    one_line_error(excinfo, path, expected)


def test_duplicate_question_ids(tmp_path: Path) -> None:
    obj = doc(qa("a"), qa("b"))
    obj["data"].append({"title": "Other", "paragraphs": [{"context": CONTEXT, "qas": [qa("a")]}]})
    path = write(tmp_path / "dup.json", obj)
    with pytest.raises(QADistillError) as excinfo:
        read_qa_file(path)
    one_line_error(excinfo, path, "duplicate question id 'a'", "data[1]", "first at data[0]")


# --- answer offsets ----------------------------------------------------------------------------------------


def _offsets_doc() -> dict[str, Any]:
    good = {"text": "Normandy", "answer_start": 20}
    wrong = {"text": "Normandy", "answer_start": 3}
    return doc(
        qa("keeps-one", [good, wrong], is_impossible=False),
        qa("all-wrong", [wrong, {"text": "century", "answer_start": -1}], is_impossible=False),
        qa("empty-text", [{"text": "", "answer_start": 0}], is_impossible=False),
        qa("fine", [good], is_impossible=False),
        qa("unanswerable", [], is_impossible=True),
    )


def test_wrong_offsets_keep_every_question_and_say_what_was_done(tmp_path: Path, caplog) -> None:
    """The official scorers ignore answer_start: evaluation keeps every question (dropping the answerable ones
    with a wrong offset would let an always-abstaining model score 100 EM). A wrong offset is corrected to where the
    text occurs (nearest the given one), or cleared when the text is not in the context; one warning says so."""
    path = write(tmp_path / "offsets.json", _offsets_doc())
    with caplog.at_level(logging.WARNING, logger="qadistill.data"):
        examples = read_qa_file(path)
    by_id = {e.id: e for e in examples}
    assert sorted(by_id) == ["all-wrong", "empty-text", "fine", "keeps-one", "unanswerable"]
    assert by_id["keeps-one"].answers == (Answer("Normandy", 20), Answer("Normandy", 20))
    assert by_id["all-wrong"].answers == (Answer("Normandy", 20), Answer("century", CONTEXT.index("century")))
    assert by_id["empty-text"].answers == (Answer("", None),) and not by_id["empty-text"].is_impossible
    assert by_id["unanswerable"].is_impossible
    warnings = [r for r in caplog.records if r.name == "qadistill.data" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert str(path) in message and "4 answer(s) have an answer_start that does not point at their text" in message
    assert "3 corrected" in message and "1 not found in the context" in message and "every question is kept" in message
    assert "dropped" not in message


def test_training_drops_only_questions_without_a_span(caplog) -> None:
    """Offsets matter for training spans only: a question whose gold text is nowhere in its context is dropped from
    training with a count; one whose first answer is not found trains on a later one that is."""
    from qadistill.data.examples import QAExample, with_training_spans

    unanswerable = QAExample("u", "t", CONTEXT, "q")
    fine = QAExample("f", "t", CONTEXT, "q", (Answer("Normandy", 20),))
    later = QAExample("l", "t", CONTEXT, "q", (Answer("Paris", None), Answer("century", 41)))
    nowhere = QAExample("n", "t", CONTEXT, "q", (Answer("Paris", None),))
    with caplog.at_level(logging.WARNING, logger="qadistill.data"):
        kept = with_training_spans([unanswerable, fine, later, nowhere], "training")
    assert [e.id for e in kept] == ["u", "f", "l"]
    assert kept[2].answers == (Answer("century", 41), Answer("Paris", None))
    assert [r.getMessage() for r in caplog.records] == [
        "training: dropped 1 of 4 question(s) whose gold answer text is not found in the context"
    ]


def test_offset_mismatch_strict_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "offsets.json", _offsets_doc())
    with pytest.raises(QADistillError) as excinfo:
        read_qa_file(path, strict=True)
    one_line_error(excinfo, path, "answer 1 of question 'keeps-one'", "answer_start=3")


def test_no_warning_when_offsets_match(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "ok.json", doc(qa("a")))
    with caplog.at_level(logging.WARNING, logger="qadistill.data"):
        read_qa_file(path, strict=True)
        read_qa_file(path)
    assert not caplog.records


def test_detect_kind_reports_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    with pytest.raises(QADistillError, match="no such file"):
        detect_dataset_kind(path)
    with pytest.raises(QADistillError, match="missing key 'data'"):
        detect_dataset_kind(write(tmp_path / "x.json", {"version": "1"}))


# --- sources: registry, data dir, local files ---------------------------------------------------------------


def test_registry_names_and_unknown_name() -> None:
    assert dataset_names() == ["demo-de", "demo-en", "mlqa-de", "mlqa-en", "squad_v2"]
    assert get_dataset_info("mlqa-de").hub_config == "mlqa.de.de"
    assert DATASETS["squad_v2"].kind == "squad_v2" and DATASETS["mlqa-en"].kind == "mlqa"
    with pytest.raises(QADistillError) as excinfo:
        load_examples("squad", None)
    message = str(excinfo.value)
    assert "unknown dataset 'squad'" in message and "mlqa-de" in message and "squad_v2" in message


def test_resolve_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QADISTILL_DATA_DIR", raising=False)
    assert resolve_data_dir(None) is None
    assert resolve_data_dir(str(tmp_path)) == tmp_path
    other = tmp_path / "env"
    other.mkdir()
    monkeypatch.setenv("QADISTILL_DATA_DIR", str(other))
    assert resolve_data_dir(None) == other
    assert resolve_data_dir(tmp_path) == tmp_path  # the CLI option wins
    with pytest.raises(QADistillError, match=r"from --data-dir\): no such folder"):
        resolve_data_dir(tmp_path / "typo")
    monkeypatch.setenv("QADISTILL_DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(QADistillError, match="QADISTILL_DATA_DIR"):
        resolve_data_dir(None)


def test_local_files_pooled_and_full_official_file_preferred(tmp_path: Path) -> None:
    write(tmp_path / "squad_v2/train-v2.0.first-11-articles.json", doc(qa("t1", is_impossible=False)))
    write(tmp_path / "squad_v2/dev-v2.0.labelled-half.json", doc(qa("d1", [], is_impossible=True), title="Dev"))
    assert [e.id for e in load_examples("squad_v2", tmp_path)] == ["t1", "d1"]
    write(tmp_path / "squad_v2/dev-v2.0.json", doc(qa("official", [], is_impossible=True), title="Dev"))
    info = get_dataset_info("squad_v2")
    assert [p.name for p in local_paths(info, tmp_path)] == ["train-v2.0.first-11-articles.json", "dev-v2.0.json"]
    assert [e.id for e in load_examples("squad_v2", tmp_path)] == ["t1", "official"]


def test_eval_from_dev_takes_validation_and_test_from_the_dev_file(tmp_path: Path) -> None:
    """`splits.eval_from: dev` tests on the held-out dev data (as the paper) and trains on the training data."""
    train_docs = {"data": [doc(qa(f"t{a}{i}"), title=f"Train{a}")["data"][0] for a in range(4) for i in range(a + 1)]}
    dev_docs = {"data": [doc(qa(f"d{a}", [], is_impossible=True), title=f"Dev{a}")["data"][0] for a in range(3)]}
    write(tmp_path / "squad_v2/train-v2.0.first-11-articles.json", train_docs)
    write(tmp_path / "squad_v2/dev-v2.0.labelled-half.json", dev_docs)
    fractions = {"train": 0.6, "validation": 0.2, "test": 0.1, "demo_pool": 0.1}
    dev = prepare_data(DataConfig(dataset="squad_v2", data_dir=tmp_path, splits={**fractions, "eval_from": "dev"}))
    titles = {
        name: {e.title for e in dev.splits.as_dict()[name]} for name in ("train", "validation", "test", "demo_pool")
    }
    assert all(t.startswith("Train") for t in titles["train"] | titles["demo_pool"])
    assert all(t.startswith("Dev") for t in titles["validation"] | titles["test"])
    assert titles["test"] and titles["demo_pool"] and not titles["validation"] & titles["test"]
    assert sum(len(v) for v in dev.splits.as_dict().values()) == 10 + 3
    pooled = prepare_data(DataConfig(dataset="squad_v2", data_dir=tmp_path, splits=fractions))
    assert pooled.splits.ids() != dev.splits.ids()  # the default pools both files


def test_eval_from_dev_refused_without_training_data(tmp_path: Path) -> None:
    path = write(tmp_path / "mlqa/dev-context-de-question-de.json", doc(qa("d")))
    with pytest.raises(QADistillError, match="has no official training data: use splits.eval_from: pool") as excinfo:
        prepare_data(DataConfig(dataset="mlqa-de", data_dir=tmp_path, splits={"eval_from": "dev"}))
    one_line_error(excinfo, path)
    with pytest.raises(ValueError, match="eval_from 'dev' needs"):
        DataConfig(splits={"train": 1.0, "validation": 0, "test": 0, "demo_pool": 0, "eval_from": "dev"})


def test_mlqa_dev_and_test_pooled_with_lang(tmp_path: Path) -> None:
    write(tmp_path / "mlqa/dev-context-de-question-de.json", doc(qa("d")))
    assert [(e.id, e.lang) for e in load_examples("mlqa-de", tmp_path)] == [("d", "de")]
    write(tmp_path / "mlqa/test-context-de-question-de.json", doc(qa("t"), title="T"))
    assert [e.id for e in load_examples("mlqa-de", tmp_path)] == ["d", "t"]


def test_same_id_in_two_local_files(tmp_path: Path) -> None:
    write(tmp_path / "mlqa/dev-context-en-question-en.json", doc(qa("same")))
    write(tmp_path / "mlqa/test-context-en-question-en.json", doc(qa("same")))
    with pytest.raises(QADistillError, match="question id 'same' appears in both"):
        load_examples("mlqa-en", tmp_path)


def test_local_schema_error_propagates(tmp_path: Path) -> None:
    write(tmp_path / "mlqa/dev-context-en-question-en.json", {"nope": []})
    with pytest.raises(QADistillError, match="dev-context-en-question-en.json: missing key 'data'"):
        load_examples("mlqa-en", tmp_path)


# --- sources: the hub (never the network) ---------------------------------------------------------------------


def test_offline_error_names_looked_for_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("load_dataset must not be called when offline")

    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(QADistillError) as excinfo:
        load_examples("mlqa-de", tmp_path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("dataset 'mlqa-de': no local files (looked for ")
    assert str(tmp_path / "mlqa/dev-context-de-question-de.json") in message
    assert "Hugging Face hub is unavailable (HF_HUB_OFFLINE=1)" in message
    assert message.endswith("pass --data-dir or set QADISTILL_DATA_DIR")
    with pytest.raises(QADistillError, match=r"no local files \(no data dir given\)"):
        load_examples("squad_v2", None)


def test_hub_unreachable_becomes_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    datasets = pytest.importorskip("datasets")

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Couldn't reach 'facebook/mlqa' on the Hub\n(LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(QADistillError) as excinfo:
        load_examples("mlqa-en", None)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "hub is unavailable (ConnectionError: Couldn't reach 'facebook/mlqa' on the Hub" in message


def _hub_rows(prefix: str, answers: list[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    n = len(answers)
    return {
        "id": [f"{prefix}{i}" for i in range(n)],
        "title": [f"{prefix}-title"] * n,
        "context": [CONTEXT] * n,
        "question": [f"q{i}?" for i in range(n)],
        "answers": answers,
    }


def test_hub_path_converts_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[Any, ...]] = []
    tables = {
        "train": _hub_rows("t", [{"text": ["Normandy"], "answer_start": [20]}, {"text": [], "answer_start": []}]),
        "validation": _hub_rows(
            "v", [{"text": ["Normandy", "Normandy", "10th century"], "answer_start": [20, 20, 36]}]
        ),
    }

    def fake_load_dataset(path: str, name: str | None = None, *, split: str) -> Any:
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(tables[split])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_examples("squad_v2", None)
    assert calls == [("rajpurkar/squad_v2", None, "train"), ("rajpurkar/squad_v2", None, "validation")]
    assert [e.id for e in examples] == ["t0", "t1", "v0"]
    assert examples[0].answers == (Answer("Normandy", 20),) and examples[0].title == "t-title"
    assert examples[1].is_impossible
    assert len(examples[2].answers) == 3

    calls.clear()
    tables["test"] = _hub_rows("x", [{"text": ["Normandy"], "answer_start": [20]}])
    examples = load_examples("mlqa-de", None)
    assert calls == [("facebook/mlqa", "mlqa.de.de", "validation"), ("facebook/mlqa", "mlqa.de.de", "test")]
    assert [(e.id, e.lang) for e in examples] == [("v0", "de"), ("x0", "de")]


def test_rows_to_examples_rules(caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"id": "a", "title": "T", "context": CONTEXT, "question": "q", "answers": {"text": [], "answer_start": []}}]
    with pytest.raises(QADistillError, match="hub:x: row 0: question 'a' has no answers"):
        rows_to_examples(rows, kind="mlqa", lang="en", source="hub:x")
    bad = [dict(rows[0], answers={"text": ["Normandy"], "answer_start": [0]})]
    with caplog.at_level(logging.WARNING, logger="qadistill.data"):
        (kept,) = rows_to_examples(bad, kind="squad_v2", lang="en", source="hub:x")
    assert kept.answers == (Answer("Normandy", 20),)  # corrected, as for files
    assert "hub:x: 1 answer(s) have an answer_start that does not point" in caplog.records[0].getMessage()
    with pytest.raises(QADistillError, match="does not match the context"):
        rows_to_examples(bad, kind="squad_v2", lang="en", strict=True, source="hub:x")
    with pytest.raises(QADistillError, match="missing column 'title'"):
        rows_to_examples([{k: v for k, v in rows[0].items() if k != "title"}], kind="squad_v2", lang="en")


# --- sources: packaged demo data ----------------------------------------------------------------------------


def test_demo_resource_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sources.resources, "files", lambda package: tmp_path)
    with pytest.raises(QADistillError, match="packaged file qadistill/resources/demo_qa_de.json is missing"):
        load_examples("demo-de", None)


def test_demo_resource_loaded_with_lang(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write(tmp_path / "resources" / "demo_qa_de.json", doc(qa("d1", is_impossible=False)))
    monkeypatch.setattr(sources.resources, "files", lambda package: tmp_path)
    assert [(e.id, e.lang) for e in load_examples("demo-de", Path("/ignored"))] == [("d1", "de")]


def test_train_unanswerable_share_on_the_real_squad_training_file(shared_data: Path) -> None:
    """The shared training file is 7% unanswerable; `train_unanswerable: 0.5` trains on half, tests on the same dev
    questions, and asking for more than the file holds is a one-line error."""
    splits = {"train": 0.7, "validation": 0.1, "test": 0.1, "demo_pool": 0.1, "eval_from": "dev", "max_test": 300}
    plain = prepare_data(DataConfig(dataset="squad_v2", data_dir=shared_data, splits={**splits, "max_train": 400}))
    balanced = prepare_data(
        DataConfig(
            dataset="squad_v2", data_dir=shared_data, splits={**splits, "max_train": 400, "train_unanswerable": 0.5}
        )
    )
    assert sum(e.is_impossible for e in plain.splits.train) < 0.15 * 400
    assert (len(balanced.splits.train), sum(e.is_impossible for e in balanced.splits.train)) == (400, 200)
    whole = prepare_data(DataConfig(dataset="squad_v2", data_dir=shared_data, splits=splits)).splits.train
    assert {e.id for e in balanced.splits.train} <= {e.id for e in whole}  # the same articles, another draw
    assert [e.id for e in balanced.splits.test] == [e.id for e in plain.splits.test]
    with pytest.raises(QADistillError, match="train_unanswerable 0.5 with max_train 1000 needs 500 unanswerable"):
        prepare_data(
            DataConfig(
                dataset="squad_v2",
                data_dir=shared_data,
                splits={**splits, "max_train": 1000, "train_unanswerable": 0.5},
            )
        )
