"""The packaged demo QA sets: SQuAD v2.0 schema, exact answer offsets, sizes, and reproducible generation."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATOR = REPO_ROOT / "tools" / "make_demo_data.py"
FILES = {"en": "demo_qa_en.json", "de": "demo_qa_de.json"}
# (articles, questions) ranges per language.
SIZES = {"en": ((44, 52), (350, 450)), "de": ((28, 36), (220, 300))}


def raw_text(lang: str) -> str:
    return files("qadistill.resources").joinpath(FILES[lang]).read_text(encoding="utf-8")


def load(lang: str) -> dict[str, Any]:
    return json.loads(raw_text(lang))


def questions(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["context"], qa) for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]]


@pytest.fixture(params=["en", "de"])
def lang(request: pytest.FixtureRequest) -> str:
    return request.param


def test_schema(lang: str) -> None:
    doc = load(lang)
    assert set(doc) == {"version", "data"} and doc["version"] == "v2.0"
    for article in doc["data"]:
        assert set(article) == {"title", "paragraphs"} and isinstance(article["title"], str) and article["title"]
        assert 2 <= len(article["paragraphs"]) <= 3
        for para in article["paragraphs"]:
            assert set(para) == {"context", "qas"} and isinstance(para["context"], str)
            assert 40 <= len(para["context"].split()) <= 90
            assert 2 <= len(para["qas"]) <= 4
            for qa in para["qas"]:
                assert set(qa) == {"id", "question", "answers", "is_impossible"}
                assert isinstance(qa["question"], str) and qa["question"].endswith("?")
                assert isinstance(qa["is_impossible"], bool)
                assert qa["is_impossible"] == (qa["answers"] == [])
                for ans in qa["answers"]:
                    assert set(ans) == {"text", "answer_start"}
                    assert isinstance(ans["text"], str) and type(ans["answer_start"]) is int


def test_answer_offsets(lang: str) -> None:
    for context, qa in questions(load(lang)):
        for ans in qa["answers"]:
            start, text = ans["answer_start"], ans["text"]
            assert context[start : start + len(text)] == text, qa["id"]
            assert context.count(text) == 1, qa["id"]  # unambiguous span
            assert 1 <= len(text.split()) <= 5, qa["id"]


def test_ids_and_titles_unique(lang: str) -> None:
    doc = load(lang)
    ids = [qa["id"] for _, qa in questions(doc)]
    assert len(ids) == len(set(ids))
    assert ids == [f"demo-{lang}-{i:04d}" for i in range(1, len(ids) + 1)]
    titles = [a["title"] for a in doc["data"]]
    assert len(titles) == len(set(titles))


def test_sizes_and_unanswerable_share(lang: str) -> None:
    doc = load(lang)
    (a_lo, a_hi), (q_lo, q_hi) = SIZES[lang]
    qas = [qa for _, qa in questions(doc)]
    assert a_lo <= len(doc["data"]) <= a_hi
    assert q_lo <= len(qas) <= q_hi
    share = sum(qa["is_impossible"] for qa in qas) / len(qas)
    assert 0.20 <= share <= 0.35


def test_german_has_umlauts_and_eszett() -> None:
    text = raw_text("de")
    assert any(ch in text for ch in "äöüÄÖÜ")
    assert "ß" in text
    # Written with ensure_ascii=False: the characters themselves, not \u escapes.
    assert "\\u00" not in text


def test_loads_through_reader(lang: str) -> None:
    from qadistill.data.sources import load_examples

    examples = load_examples(f"demo-{lang}", None, strict=True)
    assert len(examples) == len(questions(load(lang)))
    assert all(ex.lang == lang for ex in examples)


def test_generator_reproduces_shipped_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in FILES.values():
        shipped = files("qadistill.resources").joinpath(name).read_bytes()
        assert (tmp_path / name).read_bytes() == shipped, f"{name} is stale: rerun {GENERATOR}"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo_data", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_template_phrasing_renders(generator: ModuleType, lang: str) -> None:
    """The shipped files show only the phrasings that were drawn; a broken field in any other one fails here."""
    language = generator.load_language(lang)
    rng = random.Random(0)
    world = generator.World(rng)
    for kind in language.article_types:
        assert len(kind.paragraphs) == 3, kind.name
        facts = generator.FactSampler(rng, world, language, kind).sample()
        templates = [kind.title]
        for para in kind.paragraphs:
            for phrasings in [*para["sentences"], *(q["ask"] for q in para["questions"])]:
                # One phrasing is a plain string: a list of one would still spend a random draw.
                assert isinstance(phrasings, str) or len(phrasings) >= 2, (kind.name, phrasings)
                templates += [phrasings] if isinstance(phrasings, str) else phrasings
            templates += [q["answer"] for q in para["questions"]] + para["unanswerable"]
        for template in templates:
            text = generator.fill(template, facts)
            assert text.strip() and "{" not in text and "}" not in text, (kind.name, template)
        # Both forms of every gendered word and spec exist, whatever gender the sampled people have.
        for person in [v for v in facts.values() if isinstance(v, generator.Person)]:
            for word in language.gendered_words:
                assert getattr(person, word) in language.gendered_words[word]


def test_template_errors_name_the_template(generator: ModuleType) -> None:
    with pytest.raises(ValueError, match="founding_yaer"):
        generator.fill("It was founded in {founding_yaer}.", {"founding_year": "1650"})
    with pytest.raises(ValueError, match="frist_name"):
        person = generator.Person("Ada", "Ashcombe", True, {"he": ["he", "she"]})
        generator.fill("{founder.frist_name} and {founder.he}", {"founder": person})
    assert generator.fill("{founder:Kaufmann|Kauffrau}, {founder.he}", {"founder": person}) == "Kauffrau, she"
