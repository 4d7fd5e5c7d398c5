"""Typed QA examples shared by readers, splits, prompts, training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    """A gold answer span: its text and character offset into the context."""

    text: str
    start: int


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
