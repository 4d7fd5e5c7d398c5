#!/usr/bin/env python3
"""Generate the packaged demo QA sets `demo_qa_en.json` and `demo_qa_de.json` (SQuAD v2.0 format).

Why generated: the offline demo needs a few hundred short, extractive questions per language whose answers
can only be found by reading the context. Every fact is invented (towns, firms, festivals, inventors, rivers,
dishes, clubs, instruments, islands), so a model cannot answer from memorised world knowledge, and no text is
taken from any existing dataset or from Wikipedia. The text is original, written for this project.

What: the words live in data files under `tools/demo_data/<language>/` (format: `tools/demo_data/README.md`):
`language.yaml` holds the sizes, shared name pools and gendered words; one file per article type holds how
its facts are drawn and three paragraph templates, each with alternative phrasings per sentence and per
question, and questions that the article never answers. This file is the engine that fills them in.

How: a seeded `random.Random` drives all choices, so the output is byte-identical on every run. An article
keeps all three paragraphs or the first and one other. Each paragraph is checked before it is kept: 40-90
words, and a question is only asked when its answer (1-5 words) occurs exactly once in the context, on word
boundaries, so `answer_start` from `str.find` is unambiguous. Unanswerable questions ask about the
paragraph's topic for a fact that the article never states; their share is steered towards 27% per language.
Any change to a data file or to the order of random draws here changes the shipped files.

Usage:  python tools/make_demo_data.py                  # writes src/qadistill/resources/demo_qa_{en,de}.json
        python tools/make_demo_data.py --out-dir DIR    # writes into DIR instead
        python tools/make_demo_data.py --check          # exits 1 if the shipped files differ from a fresh run
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

SEED = 20250611
LANGUAGES = ("en", "de")
DATA_DIR = Path(__file__).resolve().parent / "demo_data"
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "qadistill" / "resources"
MIN_WORDS, MAX_WORDS = 40, 90
MAX_ANSWER_WORDS = 5
PARAGRAPH_TRIES = 40
ARTICLE_TRIES = 20
# Per paragraph: how many answerable questions to ask (drawn), and at most this many questions in all.
ANSWERABLE_PER_PARAGRAPH = (2, 2, 3, 3, 3)
MAX_QUESTIONS = 4
UNANSWERABLE_SHARE = 0.27  # steered per paragraph, with this noise, towards this share
UNANSWERABLE_NOISE = (-0.7, 0.0, 0.0, 0.7)

Facts = dict[str, Any]


# --------------------------------------------------------------------------------------------------------------
# Data files
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleType:
    name: str
    title: str  # a template over the facts
    facts: Mapping[str, Any]  # fact name -> rule, drawn in file order
    paragraphs: list[Mapping[str, Any]]
    pools: Mapping[str, Any]  # word lists of this type; the language's pools are the fallback


@dataclass(frozen=True)
class Language:
    code: str
    articles: int
    two_paragraph_share: float  # share of articles that keep only two of their three paragraphs
    thousands_separator: str
    a_before_vowel_becomes_an: bool
    gendered_words: Mapping[str, list[str]]  # word -> [male form, female form]
    new_names: Mapping[str, Any]  # kind -> rule, for {new: kind}
    pools: Mapping[str, Any]
    article_types: list[ArticleType]


def read_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_language(code: str, data_dir: Path = DATA_DIR) -> Language:
    spec = read_yaml(data_dir / code / "language.yaml")
    types = [
        ArticleType(name=name, **{"pools": {}, **read_yaml(data_dir / code / f"{name}.yaml")})
        for name in spec.pop("article_types")
    ]
    return Language(code=code, article_types=types, **spec)


# --------------------------------------------------------------------------------------------------------------
# Templates: str.format with people, records and two kinds of format spec
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    first_name: str
    last_name: str
    female: bool
    words: Mapping[str, list[str]] = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def __getattr__(self, word: str) -> str:
        """A gendered word of the language: `{founder.He}` is "He" or "She"."""
        forms = self.__dict__.get("words", {}).get(word)
        if forms is None:
            raise AttributeError(word)
        return forms[self.female]


def german_genitive(name: str) -> str:
    """Saxon genitive: "Jörg Kößlers", "Wiebke Claußens", but "Björn Voß'"."""
    return name + ("'" if name[-1] in "sßxz" else "s")


FILTERS = {"capitalize": str.capitalize, "genitive": german_genitive}


class TemplateFormatter(string.Formatter):
    """`{fact}`, `{person.name}`, `{record.field}`, `{list[0]}`, plus two format specs: a filter
    (`{trade:capitalize}`) and a gendered choice (`{partner:Kaufmann|Kauffrau}`, by the value's `female`)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if "|" in format_spec:
            male, female = format_spec.split("|")
            return female if value.female else male
        if format_spec in FILTERS:
            return FILTERS[format_spec](str(value))
        return format(value, format_spec)


FORMATTER = TemplateFormatter()


def fill(template: str, facts: Facts) -> str:
    try:
        return FORMATTER.vformat(template, (), facts)
    except (KeyError, AttributeError, IndexError, ValueError) as err:
        raise ValueError(f"template {template!r}: {err!r}") from err


_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[AEIOUaeiou])")


def a_to_an(text: str) -> str:
    """English "a" before a vowel becomes "an" ("a inn" -> "an inn"); templates insert words of either kind."""
    return _A_BEFORE_VOWEL.sub(r"\1n ", text)


# --------------------------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------------------------


class World:
    """Hands out invented names without repetition, so every name belongs to exactly one article."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def draw(self, pool: Sequence[str]) -> str:
        options = [p for p in pool if p not in self.used]
        if not options:
            raise RuntimeError(f"name pool exhausted: {pool[:3]}...")
        value = self.rng.choice(options)
        self.used.add(value)
        return value

    def compose(self, starts: Sequence[str], endings: Sequence[str]) -> str:
        for _ in range(500):
            value = self.rng.choice(starts) + self.rng.choice(endings)
            if value not in self.used and not any(value in u or u in value for u in self.used if len(u) > 3):
                self.used.add(value)
                return value
        raise RuntimeError(f"could not compose a fresh name from {starts[:3]}...")

    def person(self, first_names: Mapping[str, str], last_names: Sequence[str], words: Mapping) -> Person:
        # Surnames are unique per dataset, so a person's name never leaks into another article.
        first, gender = self.rng.choice(list(first_names.items()))
        return Person(first, self.draw(last_names), gender == "female", words)


_OFFSET = re.compile(r"(\w+) ([+-]) (\d+)")


class FactSampler:
    """Draws one article's facts by the rules of its type; numbers never repeat inside the article."""

    def __init__(self, rng: random.Random, world: World, language: Language, kind: ArticleType) -> None:
        self.rng, self.world, self.language, self.kind = rng, world, language, kind
        self.numbers: set[int] = set()

    def sample(self) -> Facts:
        facts: Facts = {}
        for name, rule in self.kind.facts.items():
            try:
                facts[name] = self.draw(rule, facts)
            except (KeyError, ValueError, TypeError) as err:
                raise ValueError(f"{self.language.code}/{self.kind.name}.yaml: fact {name!r}: {err!r}") from err
        return facts

    def pool(self, ref: str | list) -> Any:
        return ref if isinstance(ref, list) else self.kind.pools.get(ref) or self.language.pools[ref]

    def draw(self, rule: str | Mapping[str, Any], facts: Facts) -> Any:
        """One fact; see tools/demo_data/README.md for the rules."""
        if isinstance(rule, str):
            return fill(rule, facts)
        if "choice" in rule:
            value = self.rng.choice(self.pool(rule["choice"]))
            if "gender_of" in rule:
                return value[int(facts[rule["gender_of"]].female)]
            return SimpleNamespace(**value) if isinstance(value, dict) else value
        if "draw" in rule:
            return self.world.draw(self.pool(rule["draw"]))
        if "compose" in rule:
            return self.world.compose(*(self.pool(part) for part in rule["compose"]))
        if "person" in rule:
            first_names, last_names = (self.pool(part) for part in rule["person"])
            return self.world.person(first_names, last_names, self.language.gendered_words)
        if "new" in rule:
            return self.draw(self.language.new_names[rule["new"]], facts)
        if "sample" in rule:
            return self.rng.sample(list(self.pool(rule["sample"])), rule["count"])
        if "number" in rule:
            return self.number(rule, facts)
        raise ValueError(f"unknown rule {rule}")

    def number(self, rule: Mapping[str, Any], facts: Facts) -> str:
        low, high, *step = (self.bound(b, facts) for b in rule["number"])
        high = min(high, rule.get("latest", high))
        for _ in range(200):
            value = self.rng.randrange(low, high + 1, *step)
            if value not in self.numbers:
                self.numbers.add(value)
                return self.group(value) if rule.get("grouped") else str(value)
        raise RuntimeError("number range exhausted")

    def group(self, value: int) -> str:
        """With thousands separators: "12,500" in English, "12.500" in German."""
        return f"{value:,}".replace(",", self.language.thousands_separator)

    @staticmethod
    def bound(bound: int | str, facts: Facts) -> int:
        """A number, or an earlier fact plus or minus a number: "birth_year + 24"."""
        if isinstance(bound, int):
            return bound
        match = _OFFSET.fullmatch(bound)
        if match is None:
            raise ValueError(f"bad bound {bound!r}: write a number or 'fact + N'")
        name, sign, offset = match.groups()
        return int(facts[name]) + (int(offset) if sign == "+" else -int(offset))


# --------------------------------------------------------------------------------------------------------------
# Assembly: articles -> SQuAD v2.0 JSON
# --------------------------------------------------------------------------------------------------------------


def word_count(text: str) -> int:
    return len(text.split())


def find_once(context: str, answer: str) -> int:
    """Start of `answer` in `context` when it occurs exactly once and on word boundaries, else -1."""
    start = context.find(answer)
    if start < 0 or context.find(answer, start + 1) >= 0:
        return -1
    end = start + len(answer)
    if (start > 0 and context[start - 1].isalnum()) or (end < len(context) and context[end].isalnum()):
        return -1
    return start


def pick(rng: random.Random, phrasings: str | list[str]) -> str:
    """One phrasing; a single phrasing draws nothing."""
    return phrasings if isinstance(phrasings, str) else rng.choice(phrasings)


def write_paragraph(
    rng: random.Random, language: Language, template: Mapping[str, Any], facts: Facts
) -> tuple[str, list[tuple[str, str]], list[str]]:
    """Context, (question, answer) pairs and unanswerable questions, with fresh phrasings."""
    fix = a_to_an if language.a_before_vowel_becomes_an else str
    context = fix(" ".join(fill(pick(rng, s), facts) for s in template["sentences"]))
    qa = [(fix(fill(pick(rng, q["ask"]), facts)), fill(q["answer"], facts)) for q in template["questions"]]
    return context, qa, [fix(fill(q, facts)) for q in template["unanswerable"]]


def build_paragraph(
    rng: random.Random, language: Language, template: Mapping[str, Any], facts: Facts, tally: list[int]
) -> dict | None:
    """One paragraph with its questions, or None when no phrasing fits the word limits.

    `tally` is [answerable, unanswerable] so far; it is updated with this paragraph's questions.
    """
    for _ in range(PARAGRAPH_TRIES):
        context, qa, unanswerable = write_paragraph(rng, language, template, facts)
        if MIN_WORDS <= word_count(context) <= MAX_WORDS:
            break
    else:
        return None
    answerable, seen = [], set()
    for question, answer in qa:
        start = find_once(context, answer)
        if start >= 0 and answer not in seen and 1 <= word_count(answer) <= MAX_ANSWER_WORDS:
            seen.add(answer)
            answerable.append({"question": question, "answers": [{"text": answer, "answer_start": start}]})
    if len(answerable) < 2:
        return None
    n_answerable = min(rng.choice(ANSWERABLE_PER_PARAGRAPH), len(answerable))
    # How many unanswerable questions bring the running share to UNANSWERABLE_SHARE, give or take one.
    share, (so_far_answerable, so_far_unanswerable) = UNANSWERABLE_SHARE, tally
    ideal = (share * (so_far_answerable + so_far_unanswerable + n_answerable) - so_far_unanswerable) / (1 - share)
    noisy = round(ideal + rng.choice(UNANSWERABLE_NOISE))
    n_unanswerable = max(0, min(noisy, 2, len(unanswerable), MAX_QUESTIONS - n_answerable))
    tally[0] += n_answerable
    tally[1] += n_unanswerable
    qas = rng.sample(answerable, n_answerable)
    qas += [{"question": q, "answers": []} for q in rng.sample(unanswerable, n_unanswerable)]
    rng.shuffle(qas)
    return {"context": context, "qas": qas}


def build_article(rng: random.Random, world: World, language: Language, kind: ArticleType, tally: list[int]) -> dict:
    for _ in range(ARTICLE_TRIES):
        trial = list(tally)
        facts = FactSampler(rng, world, language, kind).sample()
        templates = list(kind.paragraphs)
        if len(templates) > 2 and rng.random() < language.two_paragraph_share:
            # Two-paragraph article: keep the opening paragraph and one of the others.
            templates = [templates[0], rng.choice(templates[1:])]
        paragraphs = [build_paragraph(rng, language, t, facts, trial) for t in templates]
        if all(p is not None for p in paragraphs):
            tally[:] = trial
            return {"title": fill(kind.title, facts), "paragraphs": paragraphs}
    raise RuntimeError(f"could not build a {kind.name} article ({language.code})")


def build_dataset(language: Language) -> dict:
    rng = random.Random(f"{SEED}-{language.code}")
    world = World(rng)
    types = language.article_types
    kinds = [types[i % len(types)] for i in range(language.articles)]
    rng.shuffle(kinds)
    tally = [0, 0]
    articles = [build_article(rng, world, language, kind, tally) for kind in kinds]
    qas = [qa for article in articles for para in article["paragraphs"] for qa in para["qas"]]
    for number, qa in enumerate(qas, start=1):
        # Key order as in the official files: id, question, answers, is_impossible.
        answered = {"id": f"demo-{language.code}-{number:04d}", **qa, "is_impossible": not qa["answers"]}
        qa.clear()
        qa.update(answered)
    validate(articles, language.code)
    return {"version": "v2.0", "data": articles}


def validate(articles: list[dict], lang: str) -> None:
    titles = [a["title"] for a in articles]
    if len(set(titles)) != len(titles):
        raise RuntimeError(f"{lang}: duplicate titles")
    for article in articles:
        for para in article["paragraphs"]:
            ctx = para["context"]
            if not MIN_WORDS <= word_count(ctx) <= MAX_WORDS:
                raise RuntimeError(f"{lang}: paragraph of {word_count(ctx)} words in {article['title']!r}")
            if not 2 <= len(para["qas"]) <= MAX_QUESTIONS:
                raise RuntimeError(f"{lang}: {len(para['qas'])} questions in a paragraph of {article['title']!r}")
            for qa in para["qas"]:
                for ans in qa["answers"]:
                    start, text = ans["answer_start"], ans["text"]
                    if ctx[start : start + len(text)] != text:
                        raise RuntimeError(f"{lang}: bad answer_start for {qa['id']}")


def stats(doc: dict) -> tuple[int, int, int]:
    qas = [qa for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]]
    return len(doc["data"]), len(qas), sum(qa["is_impossible"] for qa in qas)


def render(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help=f"where to write (default: {OUT_DIR})")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out-dir, write nothing")
    args = parser.parse_args(argv)
    try:  # build both before writing either, so a broken data file leaves the shipped files alone
        docs = {lang: build_dataset(load_language(lang)) for lang in LANGUAGES}
    except (OSError, ValueError, RuntimeError, yaml.YAMLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stale = []
    for lang, doc in docs.items():
        text = render(doc)
        path = args.out_dir / f"demo_qa_{lang}.json"
        n_art, n_q, n_un = stats(doc)
        print(f"{lang}: {n_art} articles, {n_q} questions, {n_un} unanswerable ({n_un / n_q:.0%}) -> {path}")
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
    if stale:
        print("out of date: " + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
