"""Turning prompt and answer text into token ids the same way for training, distillation and generation."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def prompt_ids(tokenizer, text: str) -> list[int]:
    """Token ids of a prompt: no special tokens added, except a BOS for tokenizers that want one."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and getattr(tokenizer, "add_bos_token", False) and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def answer_ids(tokenizer, answer: str, *, plain_prompt: bool) -> list[int]:
    """Token ids of a training target: the answer (after one space in plain prompts) and the EOS token.

    EOS is always appended, also when pad == eos, so the model learns to stop; loss masks, not the pad id,
    decide which positions are trained.
    """
    text = f" {answer}" if plain_prompt else answer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id]


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack id lists into (B, T) tensors, padded on the left, with the attention mask."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids, mask
