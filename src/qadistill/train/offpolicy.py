"""DistiLLM's adaptive off-policy scheme: when to train on student-generated outputs (SGO), and the replay buffer.

Reimplemented from the DistiLLM reference code (jongwooko/distillm, finetune.py and distillm/buffer.py):

* A threshold phi starts at `init_threshold` (DistiLLM: 0.0) and rises by 0.1 (capped at 1) at a validation check
  when the student's validation CE is at least `loss_eps` (0.1) above the reference value; the reference is the
  first check's value and is reset whenever phi rises. (`raise_when="not_better"` instead raises phi whenever the
  CE fails to improve on the best value by `loss_eps`.)
* Every micro-batch draws r ~ U(0, 1). With phi_t = phi * (1 - step / max_steps) (the "decreasing" replay ratio):
  r < phi_t, or r < phi while the buffer is not full -> sample fresh answers from the student for the batch's
  prompts, push them to the buffer and train on them; else r < phi -> train on a random batch from the buffer;
  else -> train on the ground truth. So early in training (and right after phi rose) the student samples fresh
  outputs; later most off-policy steps are cheap replays.
* The buffer is a FIFO of capacity `capacity` (DistiLLM: 1000) holding token sequences; the teacher scores
  a sequence each time it is trained on (logits over 152k words do not fit a 1000-item buffer).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from qadistill.tokenize import left_pad
from qadistill.train.batching import TokenizedExample
from qadistill.train.config import OffPolicyConfig

GROUND_TRUTH, FRESH_STUDENT, REPLAY = "ground_truth", "fresh_student", "replay"
STEP_KINDS = (GROUND_TRUTH, FRESH_STUDENT, REPLAY)


class ReplayBuffer:
    """First-in first-out store of student-generated (prompt, answer) sequences, at most `capacity` of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[TokenizedExample] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.capacity

    def extend(self, items: Iterable[TokenizedExample]) -> None:
        self.items.extend(items)

    def sample(self, k: int, rng: random.Random) -> list[TokenizedExample]:
        """`k` distinct items (fewer if the buffer holds fewer), drawn with `rng`."""
        return rng.sample(list(self.items), min(k, len(self.items)))

    def state_dict(self) -> list[dict[str, Any]]:
        return [{"id": it.id, "prompt": list(it.prompt), "answer": list(it.answer)} for it in self.items]

    def load_state_dict(self, state: Sequence[dict[str, Any]]) -> None:
        self.items.clear()
        self.items.extend(TokenizedExample(tuple(d["prompt"]), tuple(d["answer"]), d["id"]) for d in state)


def _rng_to_json(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from_json(state: list[Any]) -> random.Random:
    rng = random.Random()
    rng.setstate((state[0], tuple(state[1]), state[2]))
    return rng


class AdaptiveOffPolicy:
    """The threshold, its validation reference and the random draws deciding each micro-batch's kind."""

    def __init__(self, cfg: OffPolicyConfig, seed: int) -> None:
        self.cfg = cfg
        self.threshold = cfg.init_threshold
        self.reference: float | None = None
        self.rng = random.Random(f"qadistill-offpolicy:{seed}")

    def sampling_threshold(self, step: int, max_steps: int) -> float:
        """phi_t: the part of phi that samples fresh outputs even when the buffer is full."""
        if self.cfg.replay_ratio == "constant":
            return self.threshold * 0.5
        if self.cfg.replay_ratio == "increasing":
            return self.threshold * step / max_steps
        return self.threshold * (1 - step / max_steps)

    def choose(self, step: int, max_steps: int, buffer: ReplayBuffer) -> str:
        """The kind of the next micro-batch: ground_truth, fresh_student or replay."""
        if not self.cfg.enabled:
            return GROUND_TRUTH
        r = self.rng.random()
        if r < self.sampling_threshold(step, max_steps) or (r < self.threshold and not buffer.full):
            return FRESH_STUDENT
        if r < self.threshold:
            return REPLAY
        return GROUND_TRUTH

    def update(self, val_ce: float) -> bool:
        """Feed a validation CE; returns whether the threshold rose."""
        if not self.cfg.enabled:
            return False
        if self.reference is None:
            self.reference = val_ce
            return False
        eps = self.cfg.loss_eps
        if self.cfg.raise_when == "worse":
            rise = val_ce >= self.reference + eps
            if rise:
                self.reference = val_ce
        else:
            rise = val_ce > self.reference - eps
            self.reference = min(self.reference, val_ce)
        if rise:
            self.threshold = min(1.0, round(self.threshold + self.cfg.threshold_step, 10))
        return rise

    def state_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "reference": self.reference, "rng": _rng_to_json(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.threshold, self.reference = state["threshold"], state["reference"]
        self.rng = _rng_from_json(state["rng"])


class _RealVocabulary(LogitsProcessor):
    """Never sample an embedding row past the tokenizer (padding rows of Qwen2.5's 151,936 / 152,064)."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores[:, self.vocab_size :] = float("-inf")
        return scores


@torch.no_grad()
def sample_student_answers(
    model,
    tokenizer,
    items: Sequence[TokenizedExample],
    cfg: OffPolicyConfig,
    vocab_size: int,
) -> list[TokenizedExample]:
    """Sample one answer per prompt from the student (pure sampling at `cfg.temperature`, like DistiLLM).

    Each answer is cut after its first EOS (kept, so the student learns where it stopped); an answer that never
    stopped keeps all `max_new_tokens` tokens. The result re-uses the prompts, so collating it left-pads again
    and the answers sit at the end of their rows.
    """
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    device = next(model.parameters()).device
    ids, mask = left_pad([it.prompt for it in items], pad_id)
    settings = GenerationConfig(
        do_sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=0,
        repetition_penalty=1.0,
        max_new_tokens=cfg.max_new_tokens,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    was_training = model.training
    model.eval()
    try:
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            generation_config=settings,
            logits_processor=LogitsProcessorList([_RealVocabulary(vocab_size)]),
        )
    finally:
        model.train(was_training)
    answers = []
    for it, new in zip(items, out[:, ids.shape[1] :].tolist(), strict=True):
        if eos_id in new:
            new = new[: new.index(eos_id) + 1]
        answers.append(TokenizedExample(it.prompt, tuple(new), it.id))
    return answers
