"""Teacher-logit cache: one teacher pass over the training prompts, reused by every student and seed of a grid.

For every answer position of every training example the cache holds the teacher's top-k token ids, their
log-probabilities (a log-softmax over the shared vocabulary at the run's temperature) and the log of the remaining
tail mass, computed stably as logsumexp(non-top-k logits) - logsumexp(row) (1 - sum exp(top-k) would lose most of
its digits when the top-k mass is near 1). Distilling from it needs no teacher in memory: the loss uses the sparse
divergences of `qadistill.losses` (top-k plus one tail bucket; exact when the teacher's tail mass is 0, otherwise a
lower bound on the dense divergence).

Layout of `<dir>/<key>/`, published in one rename (a crashed or concurrent build never leaves a half cache that
is read; when two builds race, the first complete one wins and the other is discarded):

* `meta.json`: format, key, what went into the key, k, temperature, vocabulary size, teacher size, and the shard
  index (`first_example`, `n_examples`, `n_positions` of each shard);
* `shard-00000.safetensors` ...: `topk_ids` (P, k) int32, `topk_logprobs` (P, k) float32, `tail_logprobs` (P,)
  float32 and `offsets` (E + 1,) int64 for the E examples of the shard, in training-data order; example i's
  answer positions are rows offsets[i] .. offsets[i + 1] (one per answer token, EOS included).

The key is a sha256 over the teacher weights (the weight files' bytes, or the tensors of a teacher with no local
files), how the teacher is loaded (dtype), the tokenizer (vocabulary and special tokens), the exact token ids of
every training example (prompt and answer, which also fix the answer masks), the prompt format, k and the
temperature. Training data drawn with another seed therefore shares the cache when its prompts are the same
(zero-shot); one-shot prompts draw their demonstration per seed, so each seed gets its own cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from qadistill.errors import QADistillError
from qadistill.io import atomic_write_json
from qadistill.modeling import answer_logits
from qadistill.train.batching import TokenizedExample, collate

logger = logging.getLogger("qadistill.train")

CACHE_FORMAT = 1
EXAMPLES_PER_SHARD = 4096
_META = "meta.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_FINGERPRINTS = "weights_sha256.json"


def default_cache_root() -> Path:
    """`$QADISTILL_CACHE/teacher_logits`, else `~/.cache/qadistill/teacher_logits`."""
    from qadistill.models import default_cache_dir

    return default_cache_dir() / "teacher_logits"


def resolve_cache_root(folder: Path | str | None) -> Path:
    return Path(folder).expanduser() if folder is not None else default_cache_root()


# ------------------------------------------------------------------------------------------------ fingerprints


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def files_fingerprint(paths: Sequence[Path], memo: Path | None = None) -> str:
    """sha256 over the names and contents of `paths`; per-file digests are remembered in `memo` (a JSON file
    keyed by path, size and mtime), so a 15 GB teacher is read once, not once per student and seed."""
    known: dict[str, str] = {}
    if memo is not None and memo.is_file():
        try:
            known = json.loads(memo.read_text("utf-8"))
        except (OSError, ValueError):
            known = {}
    digest, changed = hashlib.sha256(), False
    for path in sorted((Path(p) for p in paths), key=lambda p: p.name):
        real = path.resolve()  # a Hugging Face snapshot links to its blobs: the memo follows the link
        stat = real.stat()
        tag = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
        if tag not in known:
            known[tag], changed = _sha256_file(real), True
        digest.update(f"{path.name}:{known[tag]}\n".encode())
    if memo is not None and changed:
        try:
            atomic_write_json(memo, known)
        except OSError:  # a read-only cache root still works, it just hashes again next time
            pass
    return digest.hexdigest()


def teacher_weight_files(spec: str | Path) -> list[Path] | None:
    """The local files that hold the teacher's weights (and config), or None when there are none to hash
    (a hub id that is not in the local Hugging Face cache)."""
    from qadistill.models.loading import _resolve_named

    try:
        resolved = Path(_resolve_named(spec)).expanduser()
    except QADistillError:
        return None
    if not resolved.exists():  # a hub id: its snapshot in the local Hugging Face cache, if any
        try:
            from huggingface_hub import snapshot_download

            resolved = Path(snapshot_download(str(resolved), local_files_only=True))
        except Exception:  # not cached, offline, malformed id: the caller fingerprints the loaded tensors instead
            return None
    if resolved.is_file():
        return [resolved]
    files = [p for p in resolved.iterdir() if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json")]
    return files if any(p.suffix in _WEIGHT_SUFFIXES for p in files) else None


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the model's state dict."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 over the vocabulary (token -> id, added tokens included) and the special tokens."""
    doc = {
        "vocab": sorted(tokenizer.get_vocab().items()),
        "size": len(tokenizer),
        "bos": tokenizer.bos_token,
        "eos": tokenizer.eos_token,
        "unk": tokenizer.unk_token,
        "special": sorted(tokenizer.all_special_tokens),
    }
    return hashlib.sha256(json.dumps(doc, ensure_ascii=False).encode()).hexdigest()


def examples_fingerprint(examples: Sequence[TokenizedExample]) -> str:
    """sha256 over every example's id and exact prompt / answer token ids, in training-data order."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.id, ex.prompt, ex.answer]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def cache_key(
    *,
    teacher: str,
    teacher_dtype: str,
    tokenizer: str,
    examples: str,
    prompt: dict[str, Any],
    vocab: int,
    k: int,
    temperature: float,
) -> tuple[str, dict[str, Any]]:
    """The cache key (sha256 hex) and the document it hashes (kept in meta.json to say what the cache is of)."""
    doc = {
        "format": CACHE_FORMAT,
        "teacher_weights": teacher,
        "teacher_dtype": teacher_dtype,
        "tokenizer": tokenizer,
        "examples": examples,
        "prompt": prompt,
        "vocab": vocab,
        "k": k,
        "temperature": temperature,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest(), doc


# ------------------------------------------------------------------------------------------------ the top-k rows


def topk_logprobs(
    logits: torch.Tensor, k: int, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids (N, k) int64, log-probs (N, k) float32, tail log-prob (N,) float32) of (N, V) logits at `temperature`.

    The log-probs are a log-softmax over all V columns; the tail is logsumexp of the other V - k logits minus the
    row's logsumexp (-inf when k = V). Used both to build the cache and to top-k a live teacher on the fly.
    """
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    values, ids = z.topk(k, dim=-1)
    if k >= z.shape[-1]:
        tail = z.new_full(z.shape[:-1], -math.inf)
    else:
        tail = torch.logsumexp(z.scatter(-1, ids, -math.inf), dim=-1) - lse.squeeze(-1)
    return ids, values - lse, tail


# ------------------------------------------------------------------------------------------------- build and load


@dataclass
class CachedTargets:
    """The teacher rows of one batch, aligned with `answer_logits`' (B, A) answer columns."""

    ids: torch.Tensor  # (B, A, k) int64
    logprobs: torch.Tensor  # (B, A, k) float32
    tail: torch.Tensor  # (B, A) float32


class TeacherCache:
    """A loaded cache: the teacher rows of every training example, retrievable by example index."""

    def __init__(self, folder: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.folder, self.meta = folder, meta
        self.ids, self.logprobs, self.tail = tensors["topk_ids"], tensors["topk_logprobs"], tensors["tail_logprobs"]
        self.offsets = tensors["offsets"]

    @property
    def key(self) -> str:
        return self.meta["key"]

    @property
    def k(self) -> int:
        return self.meta["k"]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def answer_lengths(self) -> list[int]:
        return (self.offsets[1:] - self.offsets[:-1]).tolist()

    def rows(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, log-probs, tail) of example `index`'s answer positions, as stored."""
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.ids[start:end], self.logprobs[start:end], self.tail[start:end]

    def batch(self, indices: Sequence[int], answer_len: int, device: torch.device | str = "cpu") -> CachedTargets:
        """The rows of the examples `indices`, placed where `collate` puts their answers: row b's a_b positions
        are the last a_b of the `answer_len` columns (the rest, masked out by the loss, are zeros)."""
        n, k = len(indices), self.k
        ids = torch.zeros(n, answer_len, k, dtype=torch.long)
        logprobs = torch.zeros(n, answer_len, k, dtype=torch.float32)
        tail = torch.zeros(n, answer_len, dtype=torch.float32)
        for row, index in enumerate(indices):
            r_ids, r_lp, r_tail = self.rows(index)
            a = r_ids.shape[0]
            if a > answer_len:
                raise ValueError(f"example {index} has {a} cached answer positions, more than answer_len {answer_len}")
            ids[row, answer_len - a :] = r_ids
            logprobs[row, answer_len - a :] = r_lp
            tail[row, answer_len - a :] = r_tail
        return CachedTargets(ids.to(device), logprobs.to(device), tail.to(device))


def _damaged(folder: Path, why: str) -> QADistillError:
    return QADistillError(f"teacher cache {folder} is damaged ({why}); delete the folder to rebuild it")


def load_cache(folder: Path, examples: Sequence[TokenizedExample] | None = None) -> TeacherCache:
    """Read a published cache; with `examples`, check it holds one row per answer token of each of them."""
    try:
        meta = json.loads((folder / _META).read_text("utf-8"))
        parts = [load_file(str(folder / shard["file"])) for shard in meta["shards"]]
    except Exception as exc:  # a damaged file of any kind (safetensors raises its own error type)
        raise _damaged(folder, f"{type(exc).__name__}: {exc}") from None
    if meta.get("format") != CACHE_FORMAT:
        raise QADistillError(
            f"teacher cache {folder} has format {meta.get('format')}, this qadistill reads {CACHE_FORMAT}; "
            "delete the folder to rebuild it"
        )
    offsets, base = [torch.zeros(1, dtype=torch.long)], 0
    for part in parts:
        offsets.append(part["offsets"][1:] + base)
        base += int(part["offsets"][-1])
    tensors = {name: torch.cat([p[name] for p in parts]) for name in ("topk_ids", "topk_logprobs", "tail_logprobs")}
    tensors["offsets"] = torch.cat(offsets)
    cache = TeacherCache(folder, meta, tensors)
    if len(cache) != meta["n_examples"] or tensors["topk_ids"].shape != (base, meta["k"]):
        raise _damaged(folder, "shard sizes do not match meta.json")
    if examples is not None and cache.answer_lengths() != [len(ex.answer) for ex in examples]:
        raise _damaged(folder, "its answer positions do not match the training examples")
    return cache


@dataclass(frozen=True)
class CacheSettings:
    """What a cache keeps and how it is built: the teacher's top `k` log-probabilities at `temperature` over the
    first `vocab` columns (the vocabulary teacher and student share), from teacher passes over `batch_size`
    examples padded with `pad_id`."""

    vocab: int
    k: int
    temperature: float
    batch_size: int
    pad_id: int


@torch.inference_mode()
def build_cache(
    teacher: torch.nn.Module,
    examples: Sequence[TokenizedExample],
    folder: Path,
    *,
    key: str,
    key_doc: dict[str, Any],
    settings: CacheSettings,
    info: dict[str, Any] | None = None,
    progress: bool = True,
) -> float:
    """Run `teacher` once over `examples` and publish the cache at `folder`; returns the seconds it took.

    Examples are batched by length (less padding); the rows are stored back in training-data order. If another
    build published `folder` first, this one is discarded and theirs is kept.
    """
    k, temperature, vocab, batch_size = settings.k, settings.temperature, settings.vocab, settings.batch_size
    started = time.perf_counter()
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt) + len(examples[i].answer))
    rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = [None] * len(examples)
    bar = tqdm(total=len(examples), desc="teacher cache", unit="ex", disable=not progress, dynamic_ncols=True)
    with bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate([examples[i] for i in chunk], settings.pad_id).to(device)
            logits = answer_logits(teacher, batch.input_ids, batch.attention_mask, batch.answer_len)[..., :vocab]
            mask = batch.answer_mask[:, -batch.answer_len :]
            ids, logprobs, tail = (t.cpu() for t in topk_logprobs(logits[mask], k, temperature))
            first = 0
            for i in chunk:  # logits[mask] lists row b's answer positions in order, then row b + 1's
                a = len(examples[i].answer)
                rows[i] = (ids[first : first + a].int(), logprobs[first : first + a], tail[first : first + a])
                first += a
            bar.update(len(chunk))
    teacher.train(was_training)

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        shards: list[dict[str, Any]] = []
        filled = [row for row in rows if row is not None]  # every example got its rows above
        for s, first in enumerate(range(0, len(examples), EXAMPLES_PER_SHARD)):
            part = filled[first : first + EXAMPLES_PER_SHARD]
            lengths = torch.tensor([0] + [r[0].shape[0] for r in part], dtype=torch.long)
            name = f"shard-{s:05d}.safetensors"
            save_file(
                {
                    "topk_ids": torch.cat([r[0] for r in part]).contiguous(),
                    "topk_logprobs": torch.cat([r[1] for r in part]).contiguous(),
                    "tail_logprobs": torch.cat([r[2] for r in part]).contiguous(),
                    "offsets": lengths.cumsum(0),
                },
                str(tmp / name),
            )
            shards.append(
                {"file": name, "first_example": first, "n_examples": len(part), "n_positions": int(lengths.sum())}
            )
        seconds = time.perf_counter() - started
        meta = {
            "format": CACHE_FORMAT,
            "key": key,
            "k": k,
            "temperature": temperature,
            "vocab": vocab,
            "n_examples": len(examples),
            "n_positions": sum(s["n_positions"] for s in shards),
            "shards": shards,
            "build_seconds": round(seconds, 3),
            "key_inputs": key_doc,
            **(info or {}),
        }
        (tmp / _META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        tmp.chmod(0o755)
        try:
            os.rename(tmp, folder)  # fails when `folder` exists (non-empty): another build won the race
        except OSError:
            if not (folder / _META).is_file():
                raise
            logger.info("teacher cache %s was published by another run meanwhile; keeping that one", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return seconds


# ---------------------------------------------------------------------------------------------- for the distill loop


@dataclass
class CacheSetup:
    """A ready cache and how it came about (for train_result.json)."""

    cache: TeacherCache
    built: bool
    build_seconds: float

    def summary(self) -> dict[str, Any]:
        meta = self.cache.meta
        size = sum((self.cache.folder / s["file"]).stat().st_size for s in meta["shards"])
        return {
            "key": self.cache.key,
            "dir": str(self.cache.folder),
            "k": meta["k"],
            "built": self.built,
            "build_seconds": round(self.build_seconds, 3),
            "positions": meta["n_positions"],
            "size_mb": round(size / 2**20, 3),
        }


@dataclass(frozen=True)
class CacheTeacher:
    """The teacher a cache is of: its spec and how it is loaded (`dtype`; both part of the key), the model when the
    caller already holds it (a pruned student's teacher), and `load` to load it otherwise."""

    spec: str
    dtype: str
    model: PreTrainedModel | None
    load: Callable[[], PreTrainedModel]


class Processes(Protocol):
    """The processes of a launch (an accelerate `Accelerator` or `PartialState`): the main one builds a cache."""

    @property
    def is_main_process(self) -> bool: ...

    def wait_for_everyone(self) -> None: ...


def prepare_cache(
    *,
    root: Path,
    teacher: CacheTeacher,
    tokenizer,
    examples: Sequence[TokenizedExample],
    prompt: Any,
    settings: CacheSettings,
    processes: Processes | None = None,
    progress: bool = True,
) -> CacheSetup:
    """Load the cache of this (teacher, tokenizer, data, prompt, k, temperature), building it first if absent.

    `teacher.load()` is called only when the caller holds no teacher model and the cache must be built, or to
    fingerprint a hub teacher that has no local weight files. With several `processes` the main one builds while
    the others poll for it (a failed main process ends the launch), then all meet at a barrier.
    """
    is_main = processes is None or processes.is_main_process
    model = teacher.model
    files = teacher_weight_files(teacher.spec)
    if files is not None:
        weights = files_fingerprint(files, root / _FINGERPRINTS)
    else:
        if model is None:
            model = teacher.load()
        weights = model_fingerprint(model)
    settings = replace(settings, k=min(settings.k, settings.vocab))
    key, key_doc = cache_key(
        teacher=weights,
        teacher_dtype=teacher.dtype,
        tokenizer=tokenizer_fingerprint(tokenizer),
        examples=examples_fingerprint(examples),
        prompt=asdict(prompt) if hasattr(prompt, "__dataclass_fields__") else dict(prompt),
        vocab=settings.vocab,
        k=settings.k,
        temperature=settings.temperature,
    )
    folder = root / key
    built, seconds = False, 0.0
    if is_main and not (folder / _META).is_file():
        if model is None:
            model = teacher.load()
        from qadistill.models import param_count

        info = {"teacher": teacher.spec, "teacher_params": param_count(model)}
        info["teacher_layers"] = model.config.num_hidden_layers
        seconds = build_cache(
            model, examples, folder, key=key, key_doc=key_doc, settings=settings, info=info, progress=progress
        )
        built = True
        logger.info("teacher cache %s built in %.1f s", folder, seconds)
    while not is_main and not (folder / _META).is_file():
        time.sleep(1.0)  # polling, not a barrier: building for a big teacher may outlast the collective timeout
    if processes is not None:
        processes.wait_for_everyone()
    if not (folder / _META).is_file():
        raise QADistillError(f"teacher cache {folder} was not built (the main process failed to write it)")
    return CacheSetup(load_cache(folder, examples), built, seconds)
