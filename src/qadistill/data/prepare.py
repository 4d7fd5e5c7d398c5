"""From a data config to the split examples and the prompt format every stage uses."""

from __future__ import annotations

from dataclasses import dataclass

from qadistill.config import DataConfig, PromptConfig, SplitConfig
from qadistill.data.examples import QAExample
from qadistill.data.sources import DatasetInfo, SourcePart, get_dataset_info, load_parts, local_paths, resolve_data_dir
from qadistill.data.splits import SplitFractions, Splits, cap, cap_with_unanswerable_share, split_by_article
from qadistill.errors import QADistillError
from qadistill.metrics import Dataset
from qadistill.prompts import PromptFormat


@dataclass(frozen=True)
class PreparedData:
    """A dataset split by article, with the facts prompts and scoring need."""

    info: DatasetInfo
    splits: Splits

    @property
    def lang(self) -> str:
        return self.info.lang

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def scorer(self) -> Dataset:
        """Which official scorer applies: SQuAD v2's for English SQuAD-style data, MLQA's (with its
        per-language articles and Unicode punctuation) otherwise, e.g. for the German demo set."""
        return "squad_v2" if self.kind == "squad_v2" and self.lang == "en" else "mlqa"

    def split(self, name: str) -> list[QAExample]:
        if name not in ("train", "validation", "test", "demo_pool"):
            raise QADistillError(f"unknown split {name!r} (choose train, validation, test or demo_pool)")
        examples = getattr(self.splits, name)
        if not examples:
            raise QADistillError(f"split {name!r} of dataset {self.info.name!r} is empty")
        return examples


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Load the dataset, split it by article with the split seed, and apply the caps."""
    info = get_dataset_info(cfg.dataset)
    data_dir = resolve_data_dir(cfg.data_dir)
    parts = load_parts(cfg.dataset, data_dir, strict=cfg.strict)
    files = local_paths(info, data_dir) if info.resource is None else []
    source = f"dataset {cfg.dataset!r}" + (f" ({', '.join(str(f) for f in files)})" if files else "")
    s = cfg.splits
    if s.eval_from == "dev":
        splits = _split_train_and_dev(parts, s, source)
    else:
        fractions = SplitFractions(train=s.train, validation=s.validation, test=s.test, demo_pool=s.demo_pool)
        splits = split_by_article([ex for p in parts for ex in p.examples], fractions, s.seed, source=source)
    if s.train_unanswerable is None:
        splits.train = cap(splits.train, s.max_train, s.seed)
    else:
        splits.train = cap_with_unanswerable_share(
            splits.train, s.max_train, s.train_unanswerable, s.seed, what=f"the training split of {source}"
        )
    splits.validation = cap(splits.validation, s.max_validation, s.seed)
    splits.test = cap(splits.test, s.max_test, s.seed)
    return PreparedData(info=info, splits=splits)


def prompt_format(data: PreparedData, cfg: PromptConfig) -> PromptFormat:
    """The prompt format for a dataset: its language, and an abstain marker only where questions can be unanswerable."""
    return PromptFormat(
        lang=data.lang,
        shots=cfg.shots,
        allow_unanswerable=data.kind == "squad_v2",
        style=cfg.style,
        max_prompt_tokens=cfg.max_prompt_tokens,
    )


def _split_train_and_dev(parts: list[SourcePart], s: SplitConfig, source: str) -> Splits:
    """Train and demo_pool from the official training data, validation and test from the dev data, each by
    article with the fractions rescaled to its side (the paper tests on the held-out dev set)."""
    train_side = [ex for p in parts if not p.dev for ex in p.examples]
    dev_side = [ex for p in parts if p.dev for ex in p.examples]
    for side, examples in (("training", train_side), ("dev", dev_side)):
        if not examples:
            raise QADistillError(f"{source} has no official {side} data: use splits.eval_from: pool")
    train_total, dev_total = s.train + s.demo_pool, s.validation + s.test
    train = split_by_article(
        train_side,
        SplitFractions(train=s.train / train_total, validation=0, test=0, demo_pool=s.demo_pool / train_total),
        s.seed,
        source=f"the training data of {source}",
    )
    dev = split_by_article(
        dev_side,
        SplitFractions(train=0, validation=s.validation / dev_total, test=s.test / dev_total, demo_pool=0),
        s.seed,
        source=f"the dev data of {source}",
    )
    return Splits(train=train.train, validation=dev.validation, test=dev.test, demo_pool=train.demo_pool)
