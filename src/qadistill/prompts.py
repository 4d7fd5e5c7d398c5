"""Zero- and one-shot QA prompts in English and German, plain or through a chat template.

Prompts are built here and nowhere else, so training, distillation and evaluation see the same text.
A prompt that is too long for its token budget loses context (the demonstration's first, then the question's);
the instruction, the question and, in training, the gold answer span are never cut.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from qadistill.data.examples import QAExample
from qadistill.errors import QADistillError

logger = logging.getLogger("qadistill.prompts")

PromptStyle = Literal["auto", "plain", "chat"]
MIN_PROMPT_TOKENS = 32


@dataclass(frozen=True)
class Template:
    """The words of one language's prompt."""

    instruction: str
    abstain_instruction: str
    context: str
    question: str
    answer: str
    unanswerable: str


TEMPLATES: dict[str, Template] = {
    "en": Template(
        instruction="Answer the question with a short span copied exactly from the context.",
        abstain_instruction='If the context does not contain the answer, reply "unanswerable".',
        context="Context",
        question="Question",
        answer="Answer",
        unanswerable="unanswerable",
    ),
    "de": Template(
        instruction="Beantworte die Frage mit einer kurzen Textstelle, die wörtlich aus dem Kontext stammt.",
        abstain_instruction='Wenn der Kontext die Antwort nicht enthält, antworte "unbeantwortbar".',
        context="Kontext",
        question="Frage",
        answer="Antwort",
        unanswerable="unbeantwortbar",
    ),
}


@dataclass(frozen=True)
class PromptFormat:
    """How questions are put to a model.

    Attributes:
        lang: template language ("en" or "de").
        shots: 0 (zero-shot) or 1 (one demonstration from the held-out pool).
        allow_unanswerable: SQuAD v2 style, where the model may abstain with the marker.
        style: "plain" text for base models, "chat" to use the tokenizer's chat template, "auto" = chat when the
            tokenizer has one.
        max_prompt_tokens: token budget of the whole prompt; contexts are truncated to fit.
    """

    lang: str = "en"
    shots: int = 0
    allow_unanswerable: bool = True
    style: PromptStyle = "auto"
    max_prompt_tokens: int = 768

    def __post_init__(self) -> None:
        if self.lang not in TEMPLATES:
            raise QADistillError(f"prompt language {self.lang!r} is not supported (choose from {sorted(TEMPLATES)})")
        if self.shots not in (0, 1):
            raise QADistillError(f"shots must be 0 or 1, got {self.shots}")
        if self.max_prompt_tokens < MIN_PROMPT_TOKENS:
            raise QADistillError(
                f"max_prompt_tokens must be at least {MIN_PROMPT_TOKENS}, got {self.max_prompt_tokens}"
            )

    @property
    def template(self) -> Template:
        return TEMPLATES[self.lang]


def fit_to_context(fmt: PromptFormat, context_tokens: int | None, reserved_tokens: int) -> PromptFormat:
    """`fmt` with its prompt budget lowered, if needed, so a prompt plus `reserved_tokens` (the answer, and a BOS)
    fits the model's context of `context_tokens` (None: unknown, no change).

    Without this a budget larger than the model's context gives prompts past its trained positions: an index
    error for learned position embeddings, silently degraded answers for rotary ones.
    """
    if context_tokens is None:
        return fmt
    room = context_tokens - reserved_tokens
    if room >= fmt.max_prompt_tokens:
        return fmt
    if room < MIN_PROMPT_TOKENS:
        raise QADistillError(
            f"the model's context of {context_tokens} tokens leaves {room} for the prompt after {reserved_tokens} "
            f"answer tokens; a prompt needs at least {MIN_PROMPT_TOKENS} (lower the answer length)"
        )
    logger.warning(
        "prompt budget lowered from %d to %d tokens: the model's context is %d tokens, %d of them kept for the answer",
        fmt.max_prompt_tokens,
        room,
        context_tokens,
        reserved_tokens,
    )
    return dataclasses.replace(fmt, max_prompt_tokens=room)


def target_answer(example: QAExample, fmt: PromptFormat) -> str:
    """The text a model should produce: the first gold span, or the abstain marker."""
    if example.is_impossible:
        if not fmt.allow_unanswerable:
            raise QADistillError(f"question {example.id} is unanswerable but the prompt format has no abstain marker")
        return fmt.template.unanswerable
    return newline_free(example.answers[0].text)


_PUNCT = str.maketrans("", "", string.punctuation + "„“”«»‚‘’")


def postprocess_generation(raw: str, fmt: PromptFormat) -> str:
    """Cut at the first newline, strip, and map the abstain marker to the empty answer."""
    answer = raw.split("\n", 1)[0].strip()
    if answer.translate(_PUNCT).strip().lower() == fmt.template.unanswerable:
        return ""
    return answer


def choose_demonstration(example: QAExample, pool: Sequence[QAExample], seed: int) -> QAExample:
    """Pick the one-shot demonstration for `example`: deterministic per (seed, question id), same language.

    When the pool has both answerable and unanswerable questions (SQuAD v2), each kind is drawn half the time.
    """
    candidates = [d for d in pool if d.lang == example.lang and d.id != example.id]
    if not candidates:
        raise QADistillError(f"the one-shot demonstration pool has no {example.lang!r} question")
    digest = hashlib.sha256(f"{seed}:{example.id}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    answerable = [d for d in candidates if not d.is_impossible]
    unanswerable = [d for d in candidates if d.is_impossible]
    if answerable and unanswerable:
        candidates = answerable if rng.random() < 0.5 else unanswerable
    return candidates[rng.randrange(len(candidates))]


def _question_block(t: Template, context: str, question: str) -> str:
    return f"{t.context}: {context}\n{t.question}: {question}\n{t.answer}:"


def _instruction(fmt: PromptFormat) -> str:
    t = fmt.template
    return f"{t.instruction} {t.abstain_instruction}" if fmt.allow_unanswerable else t.instruction


def uses_chat(fmt: PromptFormat, tokenizer) -> bool:
    """Whether the prompt goes through the tokenizer's chat template."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if fmt.style == "chat" and not has_template:
        raise QADistillError("prompt style 'chat' was asked for but the tokenizer has no chat template")
    return fmt.style == "chat" or (fmt.style == "auto" and has_template)


def render_prompt(
    fmt: PromptFormat,
    tokenizer,
    context: str,
    question: str,
    demo: tuple[str, str, str] | None = None,
) -> str:
    """Render the prompt text (no truncation) from a context, a question and an optional (context, question,
    answer) demonstration. The answer follows the prompt after one space (plain) or as the assistant turn (chat)."""
    t = fmt.template
    if uses_chat(fmt, tokenizer):
        messages = []
        first_prefix = _instruction(fmt) + "\n\n"
        if demo is not None:
            demo_context, demo_question, demo_answer = demo
            messages.append({"role": "user", "content": first_prefix + _question_block(t, demo_context, demo_question)})
            messages.append({"role": "assistant", "content": demo_answer})
            first_prefix = ""
        messages.append({"role": "user", "content": first_prefix + _question_block(t, context, question)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [_instruction(fmt)]
    if demo is not None:
        demo_context, demo_question, demo_answer = demo
        parts.append(f"{_question_block(t, demo_context, demo_question)} {demo_answer}")
    parts.append(_question_block(t, context, question))
    return "\n\n".join(parts)


def _count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def truncate_context(tokenizer, context: str, max_tokens: int, keep: tuple[int, int] | None = None) -> str:
    """Cut `context` to at most `max_tokens` tokens, on token boundaries.

    Without `keep` the start is kept. With `keep` = (char_start, char_end) the window is placed so that this span
    (the gold answer, in training) survives; if the span alone is longer than the budget it is kept whole.
    """
    if max_tokens <= 0:
        return context[keep[0] : keep[1]] if keep else ""
    encoding = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    if len(offsets) <= max_tokens:
        return context
    first = 0
    if keep is not None:
        span_tokens = [i for i, (s, e) in enumerate(offsets) if e > keep[0] and s < keep[1]]
        if span_tokens:
            lo, hi = span_tokens[0], span_tokens[-1]
            if hi - lo + 1 >= max_tokens:
                return context[offsets[lo][0] : offsets[hi][1]]
            slack = max_tokens - (hi - lo + 1)
            first = max(0, min(lo - slack // 2, len(offsets) - max_tokens))
    last = first + max_tokens - 1
    return context[offsets[first][0] : offsets[last][1]]


def _answer_span(example: QAExample) -> tuple[int, int] | None:
    if example.is_impossible:
        return None
    answer = example.answers[0]
    if answer.start is None:
        return None
    return (answer.start, answer.start + len(answer.text))


def build_prompt(
    example: QAExample,
    fmt: PromptFormat,
    tokenizer,
    demo: QAExample | None = None,
    *,
    keep_answer: bool = False,
) -> str:
    """The full prompt for `example`, fitted to `fmt.max_prompt_tokens`.

    `keep_answer=True` (training) keeps the gold span inside a truncated context. One-shot formats need `demo`.
    """
    if fmt.shots == 1 and demo is None:
        raise QADistillError(f"one-shot prompt for question {example.id} needs a demonstration")
    demo_fields = (demo.context, demo.question, target_answer(demo, fmt)) if fmt.shots == 1 and demo else None
    prompt = render_prompt(fmt, tokenizer, example.context, example.question, demo_fields)
    if _count_tokens(tokenizer, prompt) <= fmt.max_prompt_tokens:
        return prompt

    skeleton = render_prompt(
        fmt, tokenizer, "", example.question, (("", demo_fields[1], demo_fields[2]) if demo_fields else None)
    )
    budget = fmt.max_prompt_tokens - _count_tokens(tokenizer, skeleton) - 2  # margin for tokens merging at joins
    context_tokens = _count_tokens(tokenizer, example.context)
    demo_context = ""
    if demo_fields and demo is not None:  # demo_fields is set only with a demonstration
        demo_tokens = _count_tokens(tokenizer, demo_fields[0])
        demo_budget = min(demo_tokens, max(0, budget - context_tokens), budget // 3)
        demo_context = truncate_context(tokenizer, demo_fields[0], demo_budget, _answer_span(demo))
        budget -= _count_tokens(tokenizer, demo_context)
    keep = _answer_span(example) if keep_answer else None
    context = truncate_context(tokenizer, example.context, budget, keep)
    demo_fields = (demo_context, demo_fields[1], demo_fields[2]) if demo_fields else None
    return render_prompt(fmt, tokenizer, context, example.question, demo_fields)


def newline_free(text: str) -> str:
    """Collapse whitespace runs (incl. newlines) so a one-line answer target stays one line."""
    return re.sub(r"\s+", " ", text).strip()
