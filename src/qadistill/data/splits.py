"""Deterministic, article-level splits of a pool of QA examples.

Splitting by article (title) keeps every paragraph of an article in one split, so a model is never tested on a
passage it was trained on. SQuAD has few, large articles (27 in the shared data), so the assignment is greedy
on question counts, and every split with a positive fraction is guaranteed at least one article.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qadistill.data.examples import QAExample
from qadistill.data.readers import load_json_file
from qadistill.errors import QADistillError
from qadistill.io import atomic_write_json

SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test", "demo_pool")


@dataclass(frozen=True)
class SplitFractions:
    """Target share of questions per split; each in [0, 1], summing to 1."""

    train: float
    validation: float
    test: float
    demo_pool: float

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise QADistillError(f"split fraction '{name}' must be a number, got {value!r}")
            if value < 0:
                raise QADistillError(f"split fraction '{name}' must be >= 0, got {value}")
        total = sum(self.as_dict().values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise QADistillError(f"split fractions must sum to 1, got {total:g} ({self.as_dict()})")

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in SPLIT_NAMES}


@dataclass
class Splits:
    """The examples of each split, each list in the pool's input order."""

    train: list[QAExample] = field(default_factory=list)
    validation: list[QAExample] = field(default_factory=list)
    test: list[QAExample] = field(default_factory=list)
    demo_pool: list[QAExample] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[QAExample]]:
        return {name: getattr(self, name) for name in SPLIT_NAMES}

    def ids(self) -> dict[str, list[str]]:
        return {name: [ex.id for ex in examples] for name, examples in self.as_dict().items()}


def _check_unique_ids(examples: Sequence[QAExample], source: str) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise QADistillError(f"{source}: duplicate question id {ex.id!r}; cannot split unambiguously")
        seen.add(ex.id)


def split_by_article(
    examples: Sequence[QAExample], fractions: SplitFractions, seed: int, *, source: str = "the example pool"
) -> Splits:
    """Assign whole articles to splits so each split's question count approaches its fraction.

    Titles are sorted, then shuffled with `random.Random(seed)`, so the result depends only on the set of
    examples and the seed, not on their input order. Each article goes, in shuffled order, to the split
    whose distance to its target shrinks most. Afterwards any split with a positive fraction that is still
    empty gets the article whose move costs least from a split holding two or more.
    """
    if not examples:
        raise QADistillError(f"cannot split {source}: it has no examples")
    _check_unique_ids(examples, source)
    sizes: dict[str, int] = {}
    for ex in examples:
        sizes[ex.title] = sizes.get(ex.title, 0) + 1
    titles = sorted(sizes)
    random.Random(seed).shuffle(titles)

    wanted = [name for name, frac in fractions.as_dict().items() if frac > 0]
    if len(titles) < len(wanted):
        empty = wanted[len(titles)]
        raise QADistillError(
            f"split '{empty}' is empty: only {len(titles)} articles in {source} for {len(wanted)} splits "
            f"with a positive fraction ({', '.join(wanted)})"
        )
    total = len(examples)
    target = {name: fractions.as_dict()[name] * total for name in wanted}
    count = dict.fromkeys(wanted, 0)
    members: dict[str, list[str]] = {name: [] for name in wanted}
    for title in titles:
        size = sizes[title]

        def gain(name: str, size: int = size) -> tuple[float, float]:
            deficit = target[name] - count[name]
            return abs(deficit) - abs(deficit - size), deficit

        best = max(wanted, key=gain)  # max() keeps the first of equals: ties go in SPLIT_NAMES order
        members[best].append(title)
        count[best] += size

    for name in wanted:
        if members[name]:
            continue
        moves = [(donor, title) for donor in wanted if len(members[donor]) >= 2 for title in members[donor]]

        def cost(move: tuple[str, str], name: str = name) -> float:
            donor, title = move
            size = sizes[title]
            before = abs(target[donor] - count[donor]) + abs(target[name])
            return abs(target[donor] - count[donor] + size) + abs(target[name] - size) - before

        donor, title = min(moves, key=cost)  # non-empty: a split is empty, so some other holds >= 2 articles
        members[donor].remove(title)
        members[name].append(title)
        count[donor] -= sizes[title]
        count[name] += sizes[title]

    split_of = {title: name for name, group in members.items() for title in group}
    result = Splits()
    for ex in examples:
        getattr(result, split_of[ex.title]).append(ex)
    return result


def cap(split: Sequence[QAExample], n: int | None, seed: int) -> list[QAExample]:
    """At most `n` questions of `split`, chosen by `seed` independently of input order, kept in input order.

    `None` means no cap. Used to run small experiments on a fixed, reproducible subset.
    """
    if n is None:
        return list(split)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise QADistillError(f"split cap must be a non-negative integer, got {n!r}")
    if n >= len(split):
        return list(split)
    chosen = set(random.Random(seed).sample(sorted(ex.id for ex in split), n))
    return [ex for ex in split if ex.id in chosen]


def cap_with_unanswerable_share(
    split: Sequence[QAExample], n: int | None, share: float, seed: int, *, what: str = "the training split"
) -> list[QAExample]:
    """`n` questions of `split` (without a cap: as many as `share` allows) of which `share` are unanswerable, each
    kind chosen as `cap` chooses, kept in input order.

    SQuAD v2's official training data is a third unanswerable overall but only 7% in its first articles, while its
    dev data is half unanswerable: a model trained on the first never learns to abstain as often as the test asks.
    """
    unanswerable = [ex for ex in split if ex.is_impossible]
    answerable = [ex for ex in split if not ex.is_impossible]
    if share > 0 and not unanswerable:
        raise QADistillError(f"train_unanswerable is {share:g} but {what} has no unanswerable questions")
    room = min(
        len(unanswerable) / share if share > 0 else math.inf, len(answerable) / (1 - share) if share < 1 else math.inf
    )
    fit = math.floor(room + 1e-9)  # the most questions the split can give at this share
    total = fit if n is None else n
    if total > fit:
        raise QADistillError(
            f"train_unanswerable {share:g} with max_train {total} needs {round(share * total)} unanswerable and "
            f"{total - round(share * total)} answerable questions; {what} has {len(unanswerable)} and "
            f"{len(answerable)}: ask for at most max_train {fit} or change the share"
        )
    wanted = round(share * total)
    chosen = {ex.id for ex in (*cap(unanswerable, wanted, seed), *cap(answerable, total - wanted, seed))}
    return [ex for ex in split if ex.id in chosen]


def save_split_ids(splits: Splits, path: str | Path) -> None:
    """Write {split: [question ids]} atomically, so later stages (and reruns) use exactly these questions."""
    atomic_write_json(path, splits.ids())


def load_split_ids(path: str | Path) -> dict[str, list[str]]:
    """Read a file written by `save_split_ids`, checking its shape."""
    path = Path(path)
    doc = load_json_file(path)
    if not isinstance(doc, dict):
        raise QADistillError(f"{path}: split id file must be an object of split name -> list of ids")
    unknown = sorted(set(doc) - set(SPLIT_NAMES))
    if unknown:
        raise QADistillError(f"{path}: unknown split name(s) {unknown}; expected {list(SPLIT_NAMES)}")
    result: dict[str, list[str]] = {}
    for name in SPLIT_NAMES:
        ids = doc.get(name)
        if ids is None:
            raise QADistillError(f"{path}: missing split '{name}'")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise QADistillError(f"{path}: split '{name}' must be a list of question id strings")
        result[name] = ids
    return result


def splits_from_ids(
    examples: Iterable[QAExample], ids: Mapping[str, Sequence[str]], *, source: str = "split ids"
) -> Splits:
    """Rebuild `Splits` from a pool and saved ids (in the saved order); every id must be in the pool."""
    by_id = {ex.id: ex for ex in examples}
    result = Splits()
    for name in SPLIT_NAMES:
        missing = [i for i in ids.get(name, ()) if i not in by_id]
        if missing:
            raise QADistillError(
                f"{source}: split '{name}' has {len(missing)} question id(s) not in the dataset, "
                f"e.g. {missing[0]!r} (were the ids saved for another dataset?)"
            )
        getattr(result, name).extend(by_id[i] for i in ids.get(name, ()))
    return result
