"""Training examples as token ids, left-padded batches with the answer at the end, and a resumable data order.

Left padding puts every row's answer (gold span + EOS, or a student's sampled continuation) at the right end,
so the answer positions of a batch are its last `answer_len` columns: the LM head is applied only there
(`answer_logits`). Which positions are trained is decided by `answer_mask`, never by comparing ids with the pad
id, because pad == eos for Qwen2.5 and SmolLM2 and the EOS at the end of an answer must be trained.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from qadistill.data.examples import QAExample
from qadistill.errors import QADistillError
from qadistill.prompts import PromptFormat, build_prompt, choose_demonstration, target_answer, uses_chat
from qadistill.tokenize import answer_ids, left_pad, prompt_ids


@dataclass(frozen=True)
class TokenizedExample:
    """A prompt and the answer that follows it, as token ids (the answer ends with EOS unless truncated)."""

    prompt: tuple[int, ...]
    answer: tuple[int, ...]
    id: str = ""

    def __post_init__(self) -> None:
        if not self.answer:
            raise QADistillError(f"question {self.id or '?'}: empty answer sequence")


def encode_example(
    example: QAExample,
    fmt: PromptFormat,
    tokenizer,
    demo: QAExample | None,
    max_answer_tokens: int,
) -> TokenizedExample:
    """The training prompt (context cut to the budget around the gold span) and its target ids + EOS.

    A target longer than `max_answer_tokens` keeps its first tokens and loses the EOS: the model should not
    learn to stop in the middle of an answer.
    """
    prompt = build_prompt(example, fmt, tokenizer, demo, keep_answer=True)
    answer = answer_ids(tokenizer, target_answer(example, fmt), plain_prompt=not uses_chat(fmt, tokenizer))
    return TokenizedExample(tuple(prompt_ids(tokenizer, prompt)), tuple(answer[:max_answer_tokens]), example.id)


def encode_examples(
    examples: Sequence[QAExample],
    fmt: PromptFormat,
    tokenizer,
    demo_pool: Sequence[QAExample],
    seed: int,
    max_answer_tokens: int,
) -> list[TokenizedExample]:
    """Encode every example; one-shot demonstrations are drawn per (seed, question) from the held-out pool."""
    encoded = []
    for example in examples:
        demo = choose_demonstration(example, demo_pool, seed) if fmt.shots == 1 else None
        encoded.append(encode_example(example, fmt, tokenizer, demo, max_answer_tokens))
    return encoded


@dataclass
class Batch:
    """Left-padded prompt + answer rows.

    `answer_mask[b, t]` is true where token t of row b is part of its answer (EOS included); `answer_len` is the
    longest answer, so all answer tokens lie in the last `answer_len` columns.
    """

    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    answer_mask: torch.Tensor  # (B, T) bool
    answer_len: int

    @property
    def n_answer_tokens(self) -> int:
        return int(self.answer_mask.sum())

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def targets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels, mask), each (B, A): the answer columns, aligned with `answer_logits`' output."""
        a = self.answer_len
        return self.input_ids[:, -a:], self.answer_mask[:, -a:]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.input_ids.to(device), self.attention_mask.to(device), self.answer_mask.to(device), self.answer_len
        )


def collate(items: Sequence[TokenizedExample], pad_id: int) -> Batch:
    """Stack prompt + answer rows with left padding and mark each row's answer positions."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    ids, mask = left_pad([(*it.prompt, *it.answer) for it in items], pad_id)
    answer_mask = torch.zeros_like(ids, dtype=torch.bool)
    for row, it in enumerate(items):
        answer_mask[row, ids.shape[1] - len(it.answer) :] = True
    return Batch(ids, mask, answer_mask, max(len(it.answer) for it in items))


class DataOrder:
    """An endless stream of shuffled passes (epochs) over `n` items, cut into micro-batches.

    Epoch e is a permutation seeded by (seed, e). With several processes, global micro-batch j goes to process
    j % world_size. The whole position is one integer (micro-batches consumed per process), so a resumed run
    continues with exactly the batches the interrupted one would have seen.
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1) -> None:
        if n <= 0:
            raise QADistillError("the training split has no examples")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.position = 0
        self._epoch, self._perm = -1, list[int]()

    def _item(self, k: int) -> int:
        epoch, offset = divmod(k, self.n)
        if epoch != self._epoch:
            self._perm = list(range(self.n))
            random.Random(f"qadistill-data:{self.seed}:{epoch}").shuffle(self._perm)
            self._epoch = epoch
        return self._perm[offset]

    def next_indices(self) -> list[int]:
        """Indices of this process's next micro-batch."""
        start = (self.position * self.world_size + self.rank) * self.batch_size
        self.position += 1
        return [self._item(k) for k in range(start, start + self.batch_size)]

    @property
    def epoch(self) -> float:
        return self.position * self.world_size * self.batch_size / self.n
