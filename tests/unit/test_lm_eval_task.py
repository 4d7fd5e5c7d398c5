"""The exported lm-eval task folder, its scoring hooks, and lm-eval samples as `qadistill score` input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qadistill.errors import QADistillError
from qadistill.lm_eval_task import (
    AGGREGATIONS,
    MANIFEST,
    TaskQuestion,
    doc_to_text,
    export_from_run,
    export_task,
    process_results,
    read_questions,
    task_name,
)
from qadistill.metrics import aggregate, score_question
from qadistill.score import read_predictions, score_files

QUESTIONS = [
    TaskQuestion("q1", "Context: a b c\nQuestion: what?\nAnswer:", ("Denver Broncos",)),
    TaskQuestion("q2", "<|im_start|>user\nQ & <x>?<|im_end|>\n", ()),
    TaskQuestion("q3", "Kontext: ...", ("the cat", "a cat")),
]


def export(folder: Path, **kwargs) -> Path:
    settings = {"name": "qadistill_t", "questions": QUESTIONS, "scorer": "squad_v2", "lang": "en"}
    return export_task(folder, **(settings | {"max_new_tokens": 7, "source": {"from": "test"}} | kwargs))


def test_export_writes_exact_prompts_yaml_and_manifest(tmp_path):
    folder = export(tmp_path / "task")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["questions.jsonl", "qadistill_t.yaml", "utils.py", "README.md", MANIFEST]
    )
    docs = read_questions(folder)
    assert [doc_to_text(d) for d in docs] == [q.prompt for q in QUESTIONS]  # byte for byte, chat tokens included
    assert [d["golds"] for d in docs] == [["Denver Broncos"], [], ["the cat", "a cat"]]
    text = (folder / "qadistill_t.yaml").read_text()
    for line in ('until: ["\\n"]', "max_gen_toks: 7", "do_sample: false", 'target_delimiter: ""', "num_fewshot: 0"):
        assert line in text
    assert "NoAns_exact" in text  # q2 is unanswerable
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["questions"] == 3 and manifest["from"] == "test"


def test_no_noans_metrics_without_unanswerable_questions(tmp_path):
    folder = export(tmp_path / "task", questions=[QUESTIONS[0]])
    assert "NoAns" not in (folder / "qadistill_t.yaml").read_text()


def test_aggregations_equal_qadistill_metrics():
    docs = [{"id": q.id, "golds": list(q.golds), "lang": "en", "scorer": "squad_v2"} for q in QUESTIONS]
    generations = ["Denver Broncos.\nmore", "Unanswerable.", "cat"]
    items = [process_results(d, [g])["exact"] for d, g in zip(docs, generations, strict=True)]
    expected = aggregate(
        [score_question("q1", ["Denver Broncos"], "Denver Broncos.", dataset="squad_v2")]
        + [score_question("q2", [], "", dataset="squad_v2")]
        + [score_question("q3", ["the cat", "a cat"], "cat", dataset="squad_v2")]
    )
    for key, aggregation in AGGREGATIONS.items():
        assert aggregation(items) == expected[key], key
    assert expected["exact"] == 100.0  # the first line is kept, the abstain marker maps to ""


def test_export_refuses_a_folder_that_is_not_ours(tmp_path):
    mine = tmp_path / "somebody"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(QADistillError, match="exists and is not a task folder written by qadistill export-lm-eval"):
        export(mine)
    assert (mine / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(QADistillError, match="exists and is not a folder"):
        export(tmp_path / "file")
    again = export(export(tmp_path / "task"), questions=[QUESTIONS[0]])  # our own folder is replaced
    assert len(read_questions(again)) == 1


def test_export_from_run_needs_an_evaluation_folder(tmp_path):
    with pytest.raises(QADistillError, match="is not an evaluation folder"):
        export_from_run(tmp_path, tmp_path / "task")


def test_task_names_are_lm_eval_names():
    assert task_name("mlqa-de", "test", 1) == "qadistill_mlqa_de_test_1shot"


def sample(doc: dict, generation: str, doc_id: int = 0) -> str:
    return json.dumps({"doc_id": doc_id, "doc": doc, "resps": [[generation]], "filtered_resps": [generation]})


def test_score_reads_lm_eval_samples_of_an_exported_task(tmp_path, shared_data):
    data = shared_data / "squad_v2" / "dev-v2.0.labelled-half.json"
    article = json.loads(data.read_text())["data"][0]["paragraphs"][0]["qas"]
    answerable = next(q for q in article if q["answers"])
    unanswerable = next(q for q in article if not q["answers"])
    doc = {"lang": "en", "scorer": "squad_v2", "qadistill_task": "t", "golds": []}
    lines = [
        sample(doc | {"id": answerable["id"]}, answerable["answers"][0]["text"] + "\nextra"),
        sample(doc | {"id": unanswerable["id"]}, " unanswerable", 1),
    ]
    path = tmp_path / "samples_t_2026.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert read_predictions(path) == {answerable["id"]: answerable["answers"][0]["text"], unanswerable["id"]: ""}
    result = score_files(data, path)
    assert result["total"] - result["missing"] == 2
    assert result["exact"] == pytest.approx(200 / result["total"])


def test_score_refuses_samples_of_another_lm_eval_task(tmp_path):
    path = tmp_path / "samples_squadv2_2026.jsonl"
    path.write_text(sample({"id": "x", "question": "q", "answers": {"text": []}}, "Denver") + "\n")
    with pytest.raises(QADistillError, match=r"line 1: a sample of another lm-eval task \(its doc has no"):
        read_predictions(path)
