"""Where each micro-batch comes from: the ground truth in a resumable order, or (adaptive off-policy) the student.

A source hands the loop one accumulation window of `MicroBatch`es per step, hears about every validation (the
off-policy threshold follows the validation CE), and has a state a checkpoint restores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from qadistill.train.batching import Batch, DataOrder, TokenizedExample, collate
from qadistill.train.config import OffPolicyConfig
from qadistill.train.offpolicy import (
    FRESH_STUDENT,
    GROUND_TRUTH,
    REPLAY,
    AdaptiveOffPolicy,
    ReplayBuffer,
    sample_student_answers,
)
from qadistill.train.optim import autocast


@dataclass
class MicroBatch:
    """A collated batch, its kind (ground_truth / fresh_student / replay) and, for ground truth, which training
    examples it holds (the teacher cache looks their rows up)."""

    kind: str
    batch: Batch
    indices: list[int] | None = None


class GroundTruth:
    """Micro-batches of the training examples in `DataOrder`'s seeded, resumable order."""

    def __init__(
        self, examples: Sequence[TokenizedExample], batch_size: int, grad_accum: int, seed: int, pad_id: int, device
    ) -> None:
        from accelerate.state import PartialState

        state = PartialState()
        self.examples, self.grad_accum, self.pad_id, self.device = examples, grad_accum, pad_id, device
        self.order = DataOrder(
            len(examples), batch_size, seed, rank=state.process_index, world_size=state.num_processes
        )

    @property
    def position(self) -> int:
        return self.order.position

    def window(self, step: int, total_steps: int) -> list[MicroBatch]:
        return [self.ground_truth(self.order.next_indices()) for _ in range(self.grad_accum)]

    def ground_truth(self, indices: list[int]) -> MicroBatch:
        return MicroBatch(GROUND_TRUTH, self.collate([self.examples[i] for i in indices]), indices)

    def collate(self, items: Sequence[TokenizedExample]) -> Batch:
        return collate(items, self.pad_id).to(self.device)

    def on_validation(self, val_ce: float) -> dict[str, Any]:
        """Fields for the validation's log record."""
        return {}

    def log_fields(self) -> dict[str, Any]:
        """Fields for every step's log record."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.order.position}

    def load_state_dict(self, state: dict[str, Any], replay: list[dict[str, Any]] | None = None) -> None:
        self.order.position = state["position"]

    def replay_state(self) -> list[dict[str, Any]] | None:
        return None


@dataclass
class StudentSampler:
    """How fresh student answers are drawn: the student and its tokenizer, DistiLLM's off-policy settings (sampling
    temperature, top-p, answer length, replay), the vocabulary teacher and student share, and the precision of the
    student's forward passes."""

    cfg: OffPolicyConfig
    student: torch.nn.Module
    tokenizer: Any
    vocab: int
    precision: str

    def sample(self, prompts: Sequence[TokenizedExample], device) -> list[TokenizedExample]:
        with autocast(self.precision, torch.device(device)):
            return sample_student_answers(self.student, self.tokenizer, prompts, self.cfg, self.vocab)


class AdaptiveOffPolicySource(GroundTruth):
    """DistiLLM's adaptive off-policy batches (see `offpolicy.py`): each micro-batch is the ground truth, fresh
    student samples for its prompts (pushed to the replay buffer), or a batch drawn from the buffer."""

    def __init__(
        self,
        examples: Sequence[TokenizedExample],
        batch_size: int,
        grad_accum: int,
        seed: int,
        pad_id: int,
        device,
        *,
        sampler: StudentSampler,
    ) -> None:
        super().__init__(examples, batch_size, grad_accum, seed, pad_id, device)
        self.sampler = sampler
        self.batch_size = batch_size
        self.policy, self.buffer = AdaptiveOffPolicy(sampler.cfg, seed), ReplayBuffer(sampler.cfg.capacity)

    def window(self, step: int, total_steps: int) -> list[MicroBatch]:
        window = []
        for _ in range(self.grad_accum):
            indices = self.order.next_indices()  # the data order advances whatever the kind, as in DistiLLM
            kind = self.policy.choose(step, total_steps, self.buffer)
            if kind == FRESH_STUDENT:
                items = self.sampler.sample([self.examples[i] for i in indices], self.device)
                self.buffer.extend(items)
                window.append(MicroBatch(kind, self.collate(items)))
            elif kind == REPLAY:
                window.append(MicroBatch(kind, self.collate(self.buffer.sample(self.batch_size, self.policy.rng))))
            else:
                window.append(self.ground_truth(indices))
        return window

    def on_validation(self, val_ce: float) -> dict[str, Any]:
        raised = self.policy.update(val_ce)
        return {"threshold": self.policy.threshold, "threshold_raised": raised}

    def log_fields(self) -> dict[str, Any]:
        return {"threshold": self.policy.threshold, "replay_buffer": len(self.buffer)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "offpolicy": self.policy.state_dict()}

    def load_state_dict(self, state: dict[str, Any], replay: list[dict[str, Any]] | None = None) -> None:
        super().load_state_dict(state)
        self.policy.load_state_dict(state["offpolicy"])
        self.buffer.load_state_dict(replay or [])

    def replay_state(self) -> list[dict[str, Any]] | None:
        return self.buffer.state_dict()

    def summary(self) -> dict[str, Any]:
        return {"final_threshold": self.policy.threshold, "replay_buffer": len(self.buffer)}
