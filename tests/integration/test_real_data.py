"""The readers and splits on the real SQuAD v2.0 and MLQA files in ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from qadistill.config import DataConfig
from qadistill.data.prepare import prepare_data
from qadistill.data.readers import detect_dataset_kind, read_qa_file
from qadistill.data.sources import load_examples
from qadistill.data.splits import SPLIT_NAMES, SplitFractions, split_by_article

pytestmark = pytest.mark.realdata

# file, kind, lang, questions, unanswerable, articles (from ../shared/data/README.md)
REAL_FILES = [
    ("squad_v2/dev-v2.0.labelled-half.json", "squad_v2", "en", 6078, 3168, 16),
    ("squad_v2/train-v2.0.first-11-articles.json", "squad_v2", "en", 5147, 348, 11),
    ("mlqa/dev-context-en-question-en.json", "mlqa", "en", 1148, 0, 520),
    ("mlqa/dev-context-de-question-de.json", "mlqa", "de", 512, 0, 281),
]


@pytest.mark.parametrize(("rel", "kind", "lang", "questions", "unanswerable", "articles"), REAL_FILES)
def test_real_file_counts(
    shared_data: Path,
    caplog: pytest.LogCaptureFixture,
    rel: str,
    kind: str,
    lang: str,
    questions: int,
    unanswerable: int,
    articles: int,
) -> None:
    path = shared_data / rel
    with caplog.at_level(logging.WARNING, logger="qadistill.data"):
        examples = read_qa_file(path)
    assert len(examples) == questions
    assert sum(e.is_impossible for e in examples) == unanswerable
    assert len({e.title for e in examples}) == articles
    assert {e.lang for e in examples} == {lang}
    assert detect_dataset_kind(path) == kind
    # Every answer offset in the official files matches its context: nothing skipped, strict mode agrees.
    assert not [r for r in caplog.records if r.name == "qadistill.data"]
    assert len(read_qa_file(path, strict=True)) == questions
    for e in examples:
        for a in e.answers:
            assert e.context[a.start : a.start + len(a.text)] == a.text


def test_squad_v2_dev_keeps_multiple_gold_answers(shared_data: Path) -> None:
    examples = read_qa_file(shared_data / "squad_v2/dev-v2.0.labelled-half.json")
    answerable = [e for e in examples if not e.is_impossible]
    assert sum(len(e.answers) for e in answerable) == 10052
    assert max(len(e.answers) for e in answerable) > 1


def test_named_datasets_from_the_data_dir(shared_data: Path) -> None:
    squad = load_examples("squad_v2", shared_data)
    assert len(squad) == 6078 + 5147
    assert sum(e.is_impossible for e in squad) == 3168 + 348
    assert len(load_examples("mlqa-en", shared_data)) == 1148
    de = load_examples("mlqa-de", shared_data)
    assert len(de) == 512 and {e.lang for e in de} == {"de"}


def test_squad_v2_split_by_article_shares_no_titles(shared_data: Path) -> None:
    squad = load_examples("squad_v2", shared_data)
    fractions = SplitFractions(train=0.7, validation=0.1, test=0.15, demo_pool=0.05)
    splits = split_by_article(squad, fractions, seed=0, source="squad_v2")
    by_split = {name: {e.title for e in getattr(splits, name)} for name in SPLIT_NAMES}
    for name in SPLIT_NAMES:
        assert by_split[name], name
        for other in SPLIT_NAMES:
            if other != name:
                assert not by_split[name] & by_split[other], (name, other)
    assert sum(len(getattr(splits, n)) for n in SPLIT_NAMES) == len(squad)
    assert split_by_article(squad, fractions, seed=0).ids() == splits.ids()


def test_squad_v2_eval_from_dev_tests_on_unanswerable_questions_too(shared_data: Path) -> None:
    """The pooled split of the shared data puts two train-file articles without unanswerable questions in test;
    `eval_from: dev` (the real-data config) tests on the dev file, about half unanswerable like SQuAD v2's dev set."""
    splits = {"seed": 0, "max_train": 1000, "max_test": 300}
    dev = prepare_data(DataConfig(dataset="squad_v2", data_dir=shared_data, splits={**splits, "eval_from": "dev"}))
    test = dev.split("test")
    assert len(test) == 300 and 0.4 < sum(e.is_impossible for e in test) / 300 < 0.65
    dev_titles = _dev_titles(shared_data)
    dev_ids = {e.id for e in load_examples("squad_v2", shared_data) if e.title in dev_titles}
    assert {e.id for e in test} <= dev_ids and not {e.id for e in dev.split("train")} & dev_ids


def _dev_titles(shared_data: Path) -> set[str]:
    doc = json.loads((shared_data / "squad_v2/dev-v2.0.labelled-half.json").read_text(encoding="utf-8"))
    return {article["title"] for article in doc["data"]}
