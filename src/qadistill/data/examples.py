"""Typed QA examples shared by readers, splits, prompts, training and evaluation."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

logger = logging.getLogger("qadistill.data")


@dataclass(frozen=True)
class Answer:
    """A gold answer: its text and character offset into the context.

    `start` is None when the text is not found in the context (a data error): the answer still counts for
    scoring, as in the official scripts, but gives no span to train on.
    """

    text: str
    start: int | None


@dataclass(frozen=True)
class QAExample:
    """One extractive QA question with its context.

    `answers` is empty exactly when the question is unanswerable (SQuAD v2 `is_impossible`).
    `title` is the article title: splits are made by article so no paragraph leaks across splits.
    """

    id: str
    title: str
    context: str
    question: str
    answers: tuple[Answer, ...] = field(default_factory=tuple)
    lang: str = "en"

    @property
    def is_impossible(self) -> bool:
        return len(self.answers) == 0

    @property
    def gold_texts(self) -> list[str]:
        return [a.text for a in self.answers]


def with_training_spans(examples: Sequence[QAExample], what: str) -> list[QAExample]:
    """The examples usable as training targets: unanswerable ones, and answerable ones with a gold answer found in
    their context (that answer first, as the target). The others are dropped with one warning that counts them.

    Only training needs spans (the target, and the part of a long context to keep); evaluation scores every
    question against its answer texts.
    """
    kept: list[QAExample] = []
    for example in examples:
        located = [a for a in example.answers if a.start is not None]
        if example.is_impossible or located[:1] == list(example.answers[:1]):
            kept.append(example)
        elif located:
            others = tuple(a for a in example.answers if a is not located[0])
            kept.append(dataclasses.replace(example, answers=(located[0], *others)))
    if len(kept) < len(examples):
        logger.warning(
            "%s: dropped %d of %d question(s) whose gold answer text is not found in the context",
            what,
            len(examples) - len(kept),
            len(examples),
        )
    return kept
