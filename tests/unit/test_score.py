"""score_files: official-layout data files, both prediction formats, missing predictions and bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from qadistill.errors import QADistillError
from qadistill.score import read_predictions, score_files

SQUAD_CONTEXT = "The Denver Broncos won Super Bowl 50 in Santa Clara."


def _qa(qid: str, answers: list[str], *, context: str, impossible: bool | None = None) -> dict:
    qa: dict = {
        "id": qid,
        "question": f"question {qid}?",
        "answers": [{"text": a, "answer_start": context.find(a)} for a in answers],
    }
    if impossible is not None:
        qa["is_impossible"] = impossible
    return qa


def squad_doc() -> dict:
    c = SQUAD_CONTEXT
    return {
        "version": "v2.0",
        "data": [
            {
                "title": "Super_Bowl_50",
                "paragraphs": [
                    {
                        "context": c,
                        "qas": [
                            _qa("q1", ["Denver Broncos", "Broncos"], context=c, impossible=False),
                            _qa("q2", ["Santa Clara"], context=c, impossible=False),
                            _qa("q3", [], context=c, impossible=True),
                        ],
                    }
                ],
            },
            {
                "title": "Other",
                "paragraphs": [{"context": c, "qas": [_qa("q4", [], context=c, impossible=True)]}],
            },
        ],
    }


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


PREDS = {"q1": "the Broncos", "q2": "Clara", "q3": "", "q4": "Santa Clara"}
# q1 EM 1 F1 1; q2 EM 0 F1 2/3 (P=1, R=1/2); q3 abstains: 1 1; q4 answers an unanswerable question: 0 0
WANT = {
    "exact": 50.0,
    "f1": pytest.approx(100 * (1 + 2 / 3 + 1) / 4),
    "total": 4,
    "HasAns_exact": 50.0,
    "HasAns_f1": pytest.approx(100 * (5 / 3) / 2),
    "HasAns_total": 2,
    "NoAns_exact": 50.0,
    "NoAns_f1": 50.0,
    "NoAns_total": 2,
    # ROUGE-L: q1 max("the Broncos" vs "Denver Broncos" 1/2, vs "Broncos" 2/3); q2 2/3; q3 1; q4 0
    "rouge_l": pytest.approx(100 * (2 / 3 + 2 / 3 + 1 + 0) / 4),
    # q3 abstains; answering nothing everywhere would be right on the two unanswerable questions
    "abstention_rate": 25.0,
    "always_abstain_exact": 50.0,
    "always_abstain_f1": 50.0,
    "always_abstain_rouge_l": 50.0,
    "missing": 0,
}


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    return write_json(tmp_path / "dev-v2.0.json", squad_doc())


def test_official_json_predictions(squad_file: Path, tmp_path: Path) -> None:
    got = score_files(squad_file, write_json(tmp_path / "preds.json", PREDS))
    assert got == WANT
    assert list(got)[:3] == ["exact", "f1", "total"]


def test_jsonl_predictions_give_the_same_report(squad_file: Path, tmp_path: Path) -> None:
    rows = [{"id": k, "answer": v, "raw": f"Answer: {v}", "latency_s": 0.1} for k, v in PREDS.items()]
    assert score_files(squad_file, write_jsonl(tmp_path / "predictions.jsonl", rows)) == WANT


def test_answer_text_is_scored_as_given(squad_file: Path, tmp_path: Path) -> None:
    # no trimming of "Answer:" prefixes or similar: the official scripts score the string as it is
    preds = dict(PREDS, q1="Answer: Denver Broncos")
    got = score_files(squad_file, write_json(tmp_path / "p.json", preds))
    assert got["HasAns_exact"] == 0.0
    assert got["HasAns_f1"] == pytest.approx(100 * (2 * (2 / 3) * 1 / (2 / 3 + 1) + 2 / 3) / 2)


def test_missing_predictions_score_zero_and_count(
    squad_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    preds = {"q1": "Denver Broncos", "q3": "", "unknown-id": "ignored"}
    with caplog.at_level(logging.WARNING, logger="qadistill.score"):
        got = score_files(squad_file, write_json(tmp_path / "p.json", preds))
    assert got["total"] == 4 and got["missing"] == 2
    assert got["exact"] == 50.0
    assert (got["HasAns_exact"], got["NoAns_exact"]) == (50.0, 50.0)
    assert "no prediction for 2 of 4 questions (q2, q4)" in caplog.text


def test_no_prediction_matches_any_question_is_an_error(squad_file: Path, tmp_path: Path) -> None:
    pred = write_json(tmp_path / "other.json", {"x1": "a", "x2": "b"})
    with pytest.raises(QADistillError, match=r"other\.json: has no prediction for any of the 4 questions"):
        score_files(squad_file, pred)


def test_golds_with_wrong_offsets_are_still_scored_like_the_official_script(tmp_path: Path) -> None:
    doc = squad_doc()
    qas = doc["data"][0]["paragraphs"][0]["qas"]
    qas[1]["answers"][0]["answer_start"] = 3  # 'Santa Clara' is not at offset 3
    data = write_json(tmp_path / "dev.json", doc)
    got = score_files(data, write_json(tmp_path / "p.json", dict(PREDS, q2="Santa Clara")))
    assert got["total"] == 4
    assert got["HasAns_exact"] == 100.0


def mlqa_doc(context: str, qas: list[tuple[str, str]]) -> dict:
    return {
        "version": "1.0",
        "data": [
            {
                "title": "Artikel",
                "paragraphs": [{"context": context, "qas": [_qa(q, [a], context=context) for q, a in qas]}],
            }
        ],
    }


GERMAN_CONTEXT = "Die Größe des Hauses beträgt „zwölf Meter“. Das Haus steht in München."


@pytest.fixture
def german_file(tmp_path: Path) -> Path:
    doc = mlqa_doc(GERMAN_CONTEXT, [("m1", "Größe"), ("m2", "zwölf Meter"), ("m3", "München")])
    return write_json(tmp_path / "dev-context-de-question-de.json", doc)


def test_mlqa_language_comes_from_the_file_name(german_file: Path, tmp_path: Path) -> None:
    preds = write_json(tmp_path / "p.json", {"m1": "die Größe", "m2": "„zwölf Meter“", "m3": "in München"})
    got = score_files(german_file, preds)
    # de: 'die' is an article and „“ are punctuation; 'in' is not an article
    assert got["exact"] == pytest.approx(200 / 3)
    assert got["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3) / 3)
    assert got["rouge_l"] == pytest.approx(100 * (2 / 3 + 1 + 2 / 3) / 3)
    assert "NoAns_total" not in got and got["HasAns_total"] == 3
    # the same file scored with English rules: 'die' stays
    assert score_files(german_file, preds, lang="en")["exact"] == pytest.approx(100 / 3)


def test_mlqa_file_without_language_in_its_name_is_english(tmp_path: Path) -> None:
    doc = mlqa_doc("The Beatles were a band.", [("e1", "Beatles")])
    data = write_json(tmp_path / "mlqa.json", doc)
    assert score_files(data, write_json(tmp_path / "p.json", {"e1": "the  Beatles!"}))["exact"] == 100.0


def test_squad_v2_ignores_unicode_punctuation(squad_file: Path, tmp_path: Path) -> None:
    preds = dict(PREDS, q2="«Santa Clara»")
    assert score_files(squad_file, write_json(tmp_path / "p.json", preds))["HasAns_exact"] == 50.0


def test_read_predictions_both_formats(tmp_path: Path) -> None:
    assert read_predictions(write_json(tmp_path / "a.json", {"x": "Größe"})) == {"x": "Größe"}
    p = tmp_path / "b.jsonl"
    p.write_text('{"id": "x", "answer": "y"}\n\n{"id": "z", "answer": ""}\n', encoding="utf-8")
    assert read_predictions(p) == {"x": "y", "z": ""}


def _one_line_error(excinfo: pytest.ExceptionInfo[QADistillError], name: str, problem: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert name in msg, msg
    assert problem in msg, msg


@pytest.mark.parametrize(
    ("content", "name", "problem"),
    [
        (b"[1, 2]", "p.json", "must be a JSON object mapping question ids to answer texts, got a JSON list"),
        (b'{"q1": 3}', "p.json", "the prediction for question 'q1' must be a string, got a JSON number"),
        (b'{"q1": null}', "p.json", "got a JSON null"),
        (b'{"q1": "a",', "p.json", "malformed JSON"),
        (b"", "p.json", "empty"),
        ('{"q1": "Größe"}'.encode("latin-1"), "p.json", "not valid UTF-8"),
        (b'{"id": "q1", "answer": "a"}\n{"id": "q2"}\n', "p.jsonl", "line 2: missing key 'answer'"),
        (b'{"answer": "a"}\n', "p.jsonl", "line 1: missing key 'id'"),
        (b'{"id": 1, "answer": "a"}\n', "p.jsonl", "line 1: 'id' must be a string"),
        (b'{"id": "q1", "answer": null}\n', "p.jsonl", "line 1: 'answer' must be a string, got a JSON null"),
        (b'["q1", "a"]\n', "p.jsonl", "line 1: expected a JSON object, got a JSON list"),
        (b'{"id": "q1", "answer": "a"}\n{"id": "q1"', "p.jsonl", "line 2: malformed JSON"),
        (
            b'{"id": "q1", "answer": "a"}\n{"id": "q1", "answer": "b"}\n',
            "p.jsonl",
            "line 2: duplicate prediction for question 'q1' (first on line 1)",
        ),
        (b'{"id": "q1", "answer": "\xe4"}\n', "p.jsonl", "not valid UTF-8"),
    ],
)
def test_bad_prediction_files(squad_file: Path, tmp_path: Path, content: bytes, name: str, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(QADistillError) as excinfo:
        score_files(squad_file, path)
    _one_line_error(excinfo, name, problem)


@pytest.mark.parametrize("name", ["nope.json", "nope.jsonl"])
def test_missing_prediction_file(squad_file: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(QADistillError) as excinfo:
        score_files(squad_file, tmp_path / name)
    _one_line_error(excinfo, name, "no such file")


@pytest.mark.parametrize("name", ["preds.json", "preds.jsonl"])
def test_prediction_path_is_a_folder(squad_file: Path, tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(QADistillError) as excinfo:
        score_files(squad_file, tmp_path / name)
    _one_line_error(excinfo, name, "is a folder")


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        ("missing", "no such file"),
        ("folder", "is a folder"),
        ("malformed", "malformed JSON"),
        ("latin1", "not valid UTF-8"),
        ("list", "top level must be an object"),
        ("no_data", "missing key 'data'"),
    ],
)
def test_bad_data_files(tmp_path: Path, setup: str, problem: str) -> None:
    data = tmp_path / "dev-data.json"
    if setup == "folder":
        data.mkdir()
    elif setup == "malformed":
        data.write_text('{"data": [', encoding="utf-8")
    elif setup == "latin1":
        data.write_bytes('{"data": [], "title": "Größe"}'.encode("latin-1"))
    elif setup == "list":
        write_json(data, [])
    elif setup == "no_data":
        write_json(data, {"version": "v2.0"})
    preds = write_json(tmp_path / "p.json", PREDS)
    with pytest.raises(QADistillError) as excinfo:
        score_files(data, preds)
    _one_line_error(excinfo, "dev-data.json", problem)


def test_data_file_without_questions(tmp_path: Path) -> None:
    data = write_json(tmp_path / "dev-empty.json", {"version": "v2.0", "data": []})
    with pytest.raises(QADistillError) as excinfo:
        score_files(data, write_json(tmp_path / "p.json", PREDS))
    _one_line_error(excinfo, "dev-empty.json", "no questions")


def test_unknown_mlqa_language(german_file: Path, tmp_path: Path) -> None:
    preds = write_json(tmp_path / "p.json", {"m1": "Größe"})
    with pytest.raises(QADistillError) as excinfo:
        score_files(german_file, preds, lang="fr")
    _one_line_error(excinfo, german_file.name, "unknown MLQA answer language 'fr'")


# ---------------------------------------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_all_empty_predictions_on_real_squad_v2_dev(shared_data: Path, tmp_path: Path, fmt: str) -> None:
    data = shared_data / "squad_v2" / "dev-v2.0.labelled-half.json"
    doc = json.loads(data.read_text(encoding="utf-8"))
    qids = [qa["id"] for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]]
    if fmt == "json":
        preds = write_json(tmp_path / "p.json", {q: "" for q in qids})
    else:
        preds = write_jsonl(tmp_path / "predictions.jsonl", [{"id": q, "answer": ""} for q in qids])
    got = score_files(data, preds)
    assert got["total"] == 6078
    assert got["exact"] == 100 * 3168 / 6078
    assert got["f1"] == 100 * 3168 / 6078
    assert got["rouge_l"] == 100 * 3168 / 6078
    assert (got["NoAns_exact"], got["NoAns_total"]) == (100.0, 3168)
    assert (got["HasAns_exact"], got["HasAns_f1"], got["HasAns_total"]) == (0.0, 0.0, 2910)
    # Answering nothing is abstaining on every question, and scores exactly the always-abstain baseline.
    assert got["abstention_rate"] == 100.0
    assert (got["always_abstain_exact"], got["always_abstain_f1"]) == (got["exact"], got["f1"])
    assert got["always_abstain_rouge_l"] == got["rouge_l"]


@pytest.mark.realdata
def test_gold_predictions_on_real_mlqa_dev(shared_data: Path, tmp_path: Path) -> None:
    for lang in ("en", "de"):
        data = shared_data / "mlqa" / f"dev-context-{lang}-question-{lang}.json"
        doc = json.loads(data.read_text(encoding="utf-8"))
        golds = {qa["id"]: qa["answers"][0]["text"] for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]}
        got = score_files(data, write_json(tmp_path / f"gold-{lang}.json", golds))
        assert (got["exact"], got["f1"], got["rouge_l"]) == (100.0, 100.0, 100.0)
        assert got["total"] == {"en": 1148, "de": 512}[lang]
        assert got["abstention_rate"] == 0.0  # every gold answer is a real answer
        # MLQA has no unanswerable questions: abstaining scores nothing.
        assert (got["always_abstain_exact"], got["always_abstain_f1"], got["always_abstain_rouge_l"]) == (0, 0, 0)
