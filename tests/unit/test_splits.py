"""Article-level splits: disjoint by title, deterministic, near the fractions, never silently empty."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qadistill.data.examples import Answer, QAExample
from qadistill.data.splits import (
    SPLIT_NAMES,
    SplitFractions,
    Splits,
    cap,
    cap_with_unanswerable_share,
    load_split_ids,
    save_split_ids,
    split_by_article,
    splits_from_ids,
)
from qadistill.errors import QADistillError

FRACTIONS = SplitFractions(train=0.7, validation=0.1, test=0.15, demo_pool=0.05)


def pool(sizes: list[int], prefix: str = "") -> list[QAExample]:
    """Articles `A000`, `A001`, ... with the given numbers of questions."""
    examples = []
    for a, size in enumerate(sizes):
        for q in range(size):
            answers = (Answer("x", 0),) if q % 3 else ()
            examples.append(QAExample(f"{prefix}{a}-{q}", f"A{a:03d}", "x y", f"q{q}?", answers))
    return examples


def titles(examples: list[QAExample]) -> set[str]:
    return {e.title for e in examples}


def test_fractions_validated() -> None:
    assert FRACTIONS.as_dict()["demo_pool"] == 0.05
    SplitFractions(1, 0, 0, 0)
    with pytest.raises(QADistillError, match="sum to 1"):
        SplitFractions(0.7, 0.1, 0.1, 0.05)
    with pytest.raises(QADistillError, match="'test' must be >= 0"):
        SplitFractions(0.9, 0.2, -0.1, 0.0)
    with pytest.raises(QADistillError, match="'train' must be a number"):
        SplitFractions(float("nan"), 0.5, 0.5, 0.0)


def test_disjoint_by_article_and_complete() -> None:
    rng = random.Random(0)
    examples = pool([rng.randint(1, 40) for _ in range(60)])
    splits = split_by_article(examples, FRACTIONS, seed=1)
    groups = [titles(getattr(splits, name)) for name in SPLIT_NAMES]
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            assert not a & b
    all_ids = [e.id for name in SPLIT_NAMES for e in getattr(splits, name)]
    assert sorted(all_ids) == sorted(e.id for e in examples)
    # each split keeps the pool's order
    order = {e.id: i for i, e in enumerate(examples)}
    for name in SPLIT_NAMES:
        positions = [order[e.id] for e in getattr(splits, name)]
        assert positions == sorted(positions)


def test_fractions_roughly_respected() -> None:
    examples = pool([10] * 200)  # 2,000 questions in 200 equal articles
    splits = split_by_article(examples, FRACTIONS, seed=3)
    for name, frac in FRACTIONS.as_dict().items():
        assert abs(len(getattr(splits, name)) - frac * 2000) <= 10, name


def test_deterministic_and_independent_of_input_order() -> None:
    examples = pool([5, 9, 2, 30, 7, 11, 4, 8, 16, 3, 6, 12])
    first = split_by_article(examples, FRACTIONS, seed=7).ids()
    again = split_by_article(list(examples), FRACTIONS, seed=7).ids()
    assert first == again
    shuffled = list(examples)
    random.Random(99).shuffle(shuffled)
    reordered = split_by_article(shuffled, FRACTIONS, seed=7).ids()
    assert {k: sorted(v) for k, v in reordered.items()} == {k: sorted(v) for k, v in first.items()}
    others = [split_by_article(examples, FRACTIONS, seed=s).ids() for s in range(8)]
    assert any(o != first for o in others)  # the seed matters


def test_small_positive_split_is_never_empty() -> None:
    # Few, large articles and a tiny demo fraction: greedy assignment alone would leave demo_pool empty.
    examples = pool([500, 480, 450, 420, 300])
    fractions = SplitFractions(train=0.8, validation=0.09, test=0.1, demo_pool=0.01)
    for seed in range(10):
        splits = split_by_article(examples, fractions, seed)
        for name in SPLIT_NAMES:
            assert getattr(splits, name), (seed, name)


def test_zero_fraction_split_stays_empty() -> None:
    splits = split_by_article(pool([3] * 10), SplitFractions(0.8, 0.1, 0.1, 0.0), seed=0)
    assert splits.demo_pool == []
    assert splits.train and splits.validation and splits.test


def test_too_few_articles_is_an_error() -> None:
    with pytest.raises(QADistillError) as excinfo:
        split_by_article(pool([50, 50, 50]), FRACTIONS, seed=0, source="squad_v2")
    message = str(excinfo.value)
    assert message.startswith("split 'demo_pool' is empty: only 3 articles in squad_v2")
    # exactly enough articles: one each
    splits = split_by_article(pool([50, 1, 70, 2]), FRACTIONS, seed=0)
    assert all(len(titles(getattr(splits, n))) == 1 for n in SPLIT_NAMES)


def test_empty_pool_and_duplicate_ids_are_errors() -> None:
    with pytest.raises(QADistillError, match="no examples"):
        split_by_article([], FRACTIONS, seed=0)
    examples = pool([3, 3, 3, 3])
    with pytest.raises(QADistillError, match="duplicate question id '0-1'"):
        split_by_article(examples + examples[1:2], FRACTIONS, seed=0)


def test_cap_is_deterministic_subset_in_order() -> None:
    examples = pool([40, 40])
    capped = cap(examples, 10, seed=5)
    assert len(capped) == 10
    assert capped == cap(examples, 10, seed=5)
    assert capped != cap(examples, 10, seed=6)
    ids = [e.id for e in examples]
    assert [ids.index(e.id) for e in capped] == sorted(ids.index(e.id) for e in capped)
    assert {e.id for e in cap(list(reversed(examples)), 10, seed=5)} == {e.id for e in capped}
    assert cap(examples, None, seed=5) == examples
    assert cap(examples, 1000, seed=5) == examples
    assert cap(examples, 0, seed=5) == []
    with pytest.raises(QADistillError, match="non-negative integer"):
        cap(examples, -1, seed=5)


def test_save_and_load_split_ids_round_trip(tmp_path: Path) -> None:
    examples = pool([4, 6, 5, 7, 3, 2])
    splits = split_by_article(examples, FRACTIONS, seed=2)
    path = tmp_path / "out" / "split_ids.json"
    save_split_ids(splits, path)
    assert json.loads(path.read_text(encoding="utf-8")) == splits.ids()
    assert [p.name for p in path.parent.iterdir()] == ["split_ids.json"]  # no temp file left behind
    ids = load_split_ids(path)
    assert ids == splits.ids()
    rebuilt = splits_from_ids(examples, ids)
    assert rebuilt.ids() == splits.ids()


def test_load_split_ids_errors(tmp_path: Path) -> None:
    path = tmp_path / "ids.json"
    with pytest.raises(QADistillError, match="no such file"):
        load_split_ids(path)
    good = {name: [] for name in SPLIT_NAMES}
    path.write_text(json.dumps({**good, "dev": []}), encoding="utf-8")
    with pytest.raises(QADistillError, match=r"unknown split name\(s\) \['dev'\]"):
        load_split_ids(path)
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "test"}), encoding="utf-8")
    with pytest.raises(QADistillError, match="missing split 'test'"):
        load_split_ids(path)
    path.write_text(json.dumps({**good, "train": [1, 2]}), encoding="utf-8")
    with pytest.raises(QADistillError, match="'train' must be a list of question id strings"):
        load_split_ids(path)


def test_splits_from_ids_unknown_id() -> None:
    with pytest.raises(QADistillError, match="split 'test' has 1 question id"):
        splits_from_ids(pool([2]), {"train": ["0-0"], "test": ["zzz"]})
    assert Splits().ids() == {name: [] for name in SPLIT_NAMES}


def test_cap_with_unanswerable_share_draws_each_kind() -> None:
    examples = pool([30, 30])  # every third question unanswerable: 20 of 60
    half = cap_with_unanswerable_share(examples, 30, 0.5, seed=3)
    assert len(half) == 30 and sum(e.is_impossible for e in half) == 15
    ids = [e.id for e in examples]
    assert [ids.index(e.id) for e in half] == sorted(ids.index(e.id) for e in half)  # input order kept
    assert half == cap_with_unanswerable_share(list(reversed(examples)), 30, 0.5, seed=3)[::-1]
    assert half != cap_with_unanswerable_share(examples, 30, 0.5, seed=4)
    # without a cap: as many as the share allows (all 20 unanswerable + 20 answerable)
    uncapped = cap_with_unanswerable_share(examples, None, 0.5, seed=3)
    assert (len(uncapped), sum(e.is_impossible for e in uncapped)) == (40, 20)
    assert sum(e.is_impossible for e in cap_with_unanswerable_share(examples, 10, 0.0, seed=3)) == 0
    assert all(e.is_impossible for e in cap_with_unanswerable_share(examples, None, 1.0, seed=3))


def test_cap_with_unanswerable_share_refuses_what_the_split_cannot_give() -> None:
    examples = pool([30, 30])
    with pytest.raises(
        QADistillError, match=r"needs 25 unanswerable and 25 answerable .* has 20 and 40: ask for at most max_train 40"
    ):
        cap_with_unanswerable_share(examples, 50, 0.5, seed=0)
    answerable_only = [e for e in examples if not e.is_impossible]
    with pytest.raises(QADistillError, match="has no unanswerable questions"):
        cap_with_unanswerable_share(answerable_only, 10, 0.5, seed=0)
