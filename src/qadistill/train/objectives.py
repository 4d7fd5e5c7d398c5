"""What a training step minimises, for each kind of run; the loop (`loop.py`) is the same for all of them.

* `AnswerCE`: fine-tuning, cross-entropy on the answer tokens (span + EOS).
* `AnswerDistillation`: DistiLLM's (1 - kd_ratio) * CE + kd_ratio * divergence on the answer tokens, against the
  live teacher or its top-k logit cache. On student-generated batches the CE term is on the sampled tokens.
* `AllPositionDistillation`: the divergence at every position of prompt and answer (healing a pruned student).

Each returns the mean over its loss tokens; `loss_tokens(batch)` says how many there are, so the loop can weigh
every token of an accumulation window the same. Teacher and student are compared on the tokenizer's first
`vocab` logits (their embedding matrices may have different row counts: Qwen2.5-7B 152,064 vs 151,936). The
teacher runs without gradients, in its own dtype (outside the student's autocast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch

from qadistill.losses import answer_cross_entropy, distillation_loss, get_divergence, get_sparse_divergence
from qadistill.modeling import answer_logits, next_token_logits
from qadistill.objective import answer_objective
from qadistill.train.batching import Batch
from qadistill.train.config import DistillConfig
from qadistill.train.optim import autocast
from qadistill.train.sources import MicroBatch
from qadistill.train.teacher_cache import TeacherCache


class Terms(NamedTuple):
    """`loss` carries the gradient; `ce` and `divergence` are detached, for the log (None when not computed)."""

    loss: torch.Tensor
    ce: torch.Tensor | None = None
    divergence: torch.Tensor | None = None


class Objective(Protocol):
    def loss_tokens(self, batch: Batch) -> int: ...

    def __call__(self, model: torch.nn.Module, micro: MicroBatch) -> Terms: ...


def _student_answer_logits(model: torch.nn.Module, batch: Batch, precision: str) -> torch.Tensor:
    """The student's answer logits, in float32 (computed under bf16 autocast when `precision` is bf16)."""
    with autocast(precision, batch.input_ids.device):
        logits = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
    return logits.float()


def _frozen(device: torch.device):
    """The teacher's context: no gradient, no autocast (it runs in the dtype it was loaded in)."""
    return torch.autocast(device_type=device.type, enabled=False)


@dataclass
class AnswerCE:
    """Supervised fine-tuning: mean cross-entropy over the answer tokens."""

    precision: str = "fp32"

    def loss_tokens(self, batch: Batch) -> int:
        return batch.n_answer_tokens

    def __call__(self, model: torch.nn.Module, micro: MicroBatch) -> Terms:
        labels, mask = micro.batch.targets()
        ce = answer_cross_entropy(_student_answer_logits(model, micro.batch, self.precision), labels, mask)
        return Terms(ce, ce.detach())


@dataclass
class AnswerDistillation:
    """(1 - kd_ratio) CE + kd_ratio divergence on the answer tokens, from the live `teacher` or its `cache`.

    With a live teacher, `qadistill.objective` computes loss and gradient a few rows at a time (no dozen (N, V)
    temporaries at once); the cache's top-k rows go through the sparse divergences of `qadistill.losses`.
    """

    cfg: DistillConfig
    vocab: int
    teacher: torch.nn.Module | None = None
    cache: TeacherCache | None = None
    precision: str = "fp32"

    def loss_tokens(self, batch: Batch) -> int:
        return batch.n_answer_tokens

    def __call__(self, model: torch.nn.Module, micro: MicroBatch) -> Terms:
        batch, cfg = micro.batch, self.cfg
        labels, mask = batch.targets()
        if self.teacher is not None:
            with torch.inference_mode(), _frozen(batch.input_ids.device):
                target = answer_logits(self.teacher, batch.input_ids, batch.attention_mask, batch.answer_len)
            logits = _student_answer_logits(model, batch, self.precision)
            terms = answer_objective(
                logits,
                labels,
                mask,
                target,
                divergence=cfg.divergence,
                kd_ratio=cfg.kd_ratio,
                temperature=cfg.temperature,
                vocab=self.vocab,
                **cfg.divergence_params(),
            )
            return Terms(terms.loss, terms.ce, terms.divergence)
        if self.cache is None or micro.indices is None:
            raise ValueError("distillation needs a live teacher or cached rows of the training examples")
        cached = self.cache.batch(micro.indices, batch.answer_len, batch.input_ids.device)
        logits = _student_answer_logits(model, batch, self.precision)
        ce = answer_cross_entropy(logits, labels, mask)
        div = get_sparse_divergence(cfg.divergence)(
            logits[..., : self.vocab],
            cached.ids,
            cached.logprobs,
            mask,
            temperature=cfg.temperature,
            teacher_tail_logprobs=cached.tail,
            **cfg.divergence_params(),
        )
        return Terms(distillation_loss(ce, div, cfg.kd_ratio), ce.detach(), div.detach())


@dataclass
class AllPositionDistillation:
    """The divergence (mixed with next-token CE when kd_ratio < 1) at every position whose input and target are
    real tokens: prompt and answer alike. Dense (B, T, V) logits: meant for the small students being healed."""

    cfg: DistillConfig
    vocab: int
    teacher: torch.nn.Module
    precision: str = "fp32"

    @staticmethod
    def positions(batch: Batch) -> torch.Tensor:
        mask = batch.attention_mask.bool()
        return mask[:, :-1] & mask[:, 1:]

    def loss_tokens(self, batch: Batch) -> int:
        return int(self.positions(batch).sum())

    def __call__(self, model: torch.nn.Module, micro: MicroBatch) -> Terms:
        batch, cfg = micro.batch, self.cfg
        with torch.inference_mode(), _frozen(batch.input_ids.device):
            target = next_token_logits(self.teacher, batch.input_ids, batch.attention_mask)
        with autocast(self.precision, batch.input_ids.device):
            logits = next_token_logits(model, batch.input_ids, batch.attention_mask)
        logits, mask, labels = logits.float(), self.positions(batch), batch.input_ids[:, 1:]
        div = get_divergence(cfg.divergence)(
            logits[..., : self.vocab],
            target[..., : self.vocab].float(),
            mask,
            temperature=cfg.temperature,
            **cfg.divergence_params(),
        )
        ce = answer_cross_entropy(logits, labels, mask) if cfg.kd_ratio < 1 else None
        loss = div if ce is None else distillation_loss(ce, div, cfg.kd_ratio)
        return Terms(loss, None if ce is None else ce.detach(), div.detach())
