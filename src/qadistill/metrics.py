"""Answer metrics that reproduce the official SQuAD v2.0 and MLQA evaluation scripts, plus ROUGE-L.

Why reimplement instead of importing the scripts: they are not packaged, they print and exit, and the
SQuAD v2.0 one needs numpy. Every rule below mirrors a line of `evaluate-v2.0.py` (SQuAD v2.0) or
`mlqa_evaluation_v1.py` (MLQA v1); tests/unit/test_metrics.py checks bit-exact agreement with literal
transcriptions of both on hundreds of generated pairs.

Scales: `score_answer` returns per-question scores in [0, 1]; `aggregate` returns the official 0-100 numbers.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

Dataset = Literal["squad_v2", "mlqa"]
DATASETS: tuple[str, ...] = ("squad_v2", "mlqa")

# ---------------------------------------------------------------------------------------------------------
# SQuAD v2.0 (evaluate-v2.0.py)
# ---------------------------------------------------------------------------------------------------------

_SQUAD_PUNCT = frozenset(string.punctuation)  # ASCII only: "„Größe“" keeps its quotes in SQuAD v2.0
_SQUAD_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
_SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """SQuAD v2.0 normalization: lower-case, drop ASCII punctuation, drop a/an/the, collapse whitespace."""
    text = s.lower().translate(_SQUAD_PUNCT_TABLE)
    text = _SQUAD_ARTICLES.sub(" ", text)
    return " ".join(text.split())


def get_tokens(s: str) -> list[str]:
    """SQuAD v2.0 answer tokens: the normalized answer split on whitespace."""
    if not s:
        return []
    return normalize_answer(s).split()


def compute_exact(a_gold: str, a_pred: str) -> int:
    """1 when gold and prediction are equal after SQuAD v2.0 normalization, else 0."""
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    """SQuAD v2.0 token F1; when either side has no tokens it is 1 if both have none, else 0."""
    return _squad_f1(get_tokens(a_gold), get_tokens(a_pred))


def _squad_f1(gold_toks: list[str], pred_toks: list[str]) -> float:
    if not gold_toks or not pred_toks:
        return int(gold_toks == pred_toks)
    num_same = sum((Counter(gold_toks) & Counter(pred_toks)).values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def squad_gold_answers(golds: Sequence[str]) -> list[str]:
    """The golds the SQuAD v2.0 script scores against.

    It drops gold texts that normalize to nothing ("the", "."), and when none is left (an unanswerable
    question) the only correct answer is the empty string.
    """
    kept = [g for g in golds if normalize_answer(g)]
    return kept or [""]


# ---------------------------------------------------------------------------------------------------------
# MLQA v1 (mlqa_evaluation_v1.py)
# ---------------------------------------------------------------------------------------------------------

MLQA_LANGS: tuple[str, ...] = ("en", "es", "hi", "vi", "de", "ar", "zh")
_MLQA_WHITESPACE_LANGS = frozenset({"en", "es", "hi", "vi", "de", "ar"})
_MLQA_ARTICLES: dict[str, re.Pattern[str] | None] = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "hi": None,  # Hindi has no formal articles
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # The official pattern is '\sال^|ال'; its first branch can never match ('^' after a consumed
    # character), so it removes every 'ال' wherever it occurs, inside words too.
    "ar": re.compile(r"ال"),
    "zh": None,  # Chinese has no formal articles
}
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def is_mlqa_punct(ch: str) -> bool:
    """MLQA's PUNCT set: every Unicode character of a 'P*' category, plus ASCII `string.punctuation`.

    The official script builds the set over range(sys.maxunicode), which leaves out U+10FFFF; that code
    point is unassigned (category Cn), so testing the category directly is the same set, without the
    second of start-up time it costs to build it.
    """
    return ch in _SQUAD_PUNCT or unicodedata.category(ch).startswith("P")


def _check_mlqa_lang(lang: str) -> None:
    if lang not in _MLQA_ARTICLES:
        raise ValueError(f"unknown MLQA language {lang!r}; expected one of {', '.join(MLQA_LANGS)}")


def mlqa_mixed_segmentation(text: str) -> list[str]:
    """MLQA's tokenization for Chinese: each CJK character or punctuation mark is a token of its own."""
    segs: list[str] = []
    pending = ""
    for ch in text:
        if _CJK.search(ch) or is_mlqa_punct(ch):
            if pending:
                segs.extend(pending.split())
                pending = ""
            segs.append(ch)
        else:
            pending += ch
    if pending:
        segs.extend(pending.split())
    return segs


def mlqa_normalize_answer(s: str, lang: str) -> str:
    """MLQA normalization: lower-case, drop Unicode punctuation, drop `lang`'s articles, re-tokenize."""
    _check_mlqa_lang(lang)
    text = s.lower()
    text = "".join(ch for ch in text if not is_mlqa_punct(ch))
    articles = _MLQA_ARTICLES[lang]
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = text.split() if lang in _MLQA_WHITESPACE_LANGS else mlqa_mixed_segmentation(text)
    return " ".join(t for t in tokens if t.strip() != "")


def mlqa_exact(gold: str, pred: str, lang: str) -> int:
    """1 when gold and prediction are equal after MLQA normalization, else 0."""
    return int(mlqa_normalize_answer(pred, lang) == mlqa_normalize_answer(gold, lang))


def mlqa_f1(gold: str, pred: str, lang: str) -> float:
    """MLQA token F1: 0 whenever there is no overlap, even when both sides normalize to nothing."""
    return _mlqa_f1(mlqa_normalize_answer(gold, lang).split(), mlqa_normalize_answer(pred, lang).split())


def _mlqa_f1(gold_toks: list[str], pred_toks: list[str]) -> float:
    num_same = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


# ---------------------------------------------------------------------------------------------------------
# ROUGE-L
# ---------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _porter() -> Any:
    # Imported lazily: rouge_score pulls in nltk, which only ROUGE-L needs.
    from nltk.stem import porter

    return porter.PorterStemmer()  # the stemmer of rouge_score's RougeScorer(use_stemmer=True)


class _CachedStemmer:
    """rouge_score's Porter stemmer with each word stemmed once: stemming dominates the cost of scoring a long
    prediction, whose words repeat."""

    @staticmethod
    @lru_cache(maxsize=200_000)
    def stem(word: str) -> str:
        return _porter().stem(word)


def english_rouge_tokens(text: str) -> list[str]:
    """rouge_score's tokens (lower-cased [a-z0-9] runs, Porter-stemmed past 3 characters), stems cached."""
    from rouge_score import tokenize

    return tokenize.tokenize(text, _CachedStemmer())


def rouge_tokens(text: str) -> list[str]:
    """Tokens for non-English ROUGE-L: lower-cased Unicode word runs, no stemming.

    rouge_score's own tokenizer keeps only [a-z0-9], so it would turn "Größe" into "gr", "e".
    """
    return re.findall(r"\w+", text.lower())


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    shared = set(a) & set(b)  # tokens in only one sequence are in no common subsequence: a long b shrinks to a few
    a, b = [x for x in a if x in shared], [y for y in b if y in shared]
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _rouge_tokens(text: str, lang: str) -> list[str]:
    return english_rouge_tokens(text) if lang == "en" else rouge_tokens(text)


def _lcs_fmeasure(pred_toks: Sequence[str], gold_toks: Sequence[str]) -> float:
    if not pred_toks or not gold_toks:
        return 0.0
    lcs = _lcs_length(gold_toks, pred_toks)
    precision = lcs / len(pred_toks)
    recall = lcs / len(gold_toks)
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l(prediction: str, gold: str, *, lang: str = "en") -> float:
    """ROUGE-L F-measure of one prediction against one gold.

    English: exactly rouge_score's RougeScorer(['rougeL'], use_stemmer=True) (its tokenizer and LCS F-measure).
    Other languages: the same LCS formula over `rouge_tokens` (no stemmer exists for them in rouge_score).
    """
    return _lcs_fmeasure(_rouge_tokens(prediction, lang), _rouge_tokens(gold, lang))


def rouge_l_max(prediction: str, golds: Sequence[str], *, lang: str = "en") -> float:
    """The best `rouge_l` over `golds`, tokenizing the prediction once (a long answer is not re-stemmed per gold)."""
    pred_toks = _rouge_tokens(prediction, lang)
    return max(_lcs_fmeasure(pred_toks, _rouge_tokens(gold, lang)) for gold in golds)


# ---------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------


def _abstains(prediction: str, dataset: str, lang: str) -> bool:
    if dataset == "mlqa":
        return mlqa_normalize_answer(prediction, lang) == ""
    return normalize_answer(prediction) == ""


def score_answer(prediction: str, golds: Sequence[str], *, dataset: Dataset, lang: str = "en") -> dict[str, float]:
    """Score one predicted answer text against the gold answer texts of one question.

    Args:
        prediction: the answer text exactly as the model produced it; "" (or anything that normalizes to
            nothing) means the model abstains.
        golds: the gold answer texts; an empty list means the question is unanswerable.
        dataset: "squad_v2" scores EM/F1 like the official SQuAD v2.0 script (ASCII punctuation, English
            articles); "mlqa" like the official MLQA script (Unicode punctuation, articles and
            tokenization of `lang`).
        lang: the answer language. It selects MLQA's normalization (en, es, hi, vi, de, ar, zh) and the
            ROUGE-L tokenizer: rouge_score with Porter stemming for "en", lower-cased \\w+ words otherwise.

    Returns:
        {"exact_match", "f1", "rouge_l"}, each a float in [0, 1], the maximum over the golds.
        An unanswerable question scores 1.0 on all three when the prediction abstains, else 0.0.

    Raises:
        ValueError: unknown `dataset`, or (for "mlqa") unknown `lang`.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if dataset == "mlqa":
        _check_mlqa_lang(lang)
    if not golds:
        hit = float(_abstains(prediction, dataset, lang))
        return {"exact_match": hit, "f1": hit, "rouge_l": hit}
    # the prediction is normalized and tokenized once, not once per gold (a long answer made that quadratic-ish)
    if dataset == "squad_v2":
        squad_golds = squad_gold_answers(golds)
        pred_norm = normalize_answer(prediction)
        pred_toks = pred_norm.split() if prediction else []
        em = max(int(normalize_answer(g) == pred_norm) for g in squad_golds)
        f1 = max(_squad_f1(get_tokens(g), pred_toks) for g in squad_golds)
    else:
        pred_norm = mlqa_normalize_answer(prediction, lang)
        em = max(int(pred_norm == mlqa_normalize_answer(g, lang)) for g in golds)
        f1 = max(_mlqa_f1(mlqa_normalize_answer(g, lang).split(), pred_norm.split()) for g in golds)
    rl = rouge_l_max(prediction, golds, lang=lang)
    return {"exact_match": float(em), "f1": float(f1), "rouge_l": float(rl)}


@dataclass(frozen=True)
class QuestionScore:
    """One question's scores, the unit `aggregate` averages.

    `golds` empty means unanswerable (the NoAns group); `prediction` None means the prediction file had
    no answer for this question, which scores 0 and still counts in the totals.
    """

    qid: str
    golds: tuple[str, ...]
    prediction: str | None
    exact_match: float
    f1: float
    rouge_l: float

    @property
    def has_answer(self) -> bool:
        return bool(self.golds)


def score_question(
    qid: str, golds: Sequence[str], prediction: str | None, *, dataset: Dataset, lang: str = "en"
) -> QuestionScore:
    """`score_answer` wrapped into a QuestionScore; a missing prediction (None) scores 0 on everything."""
    if prediction is None:
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
        return QuestionScore(qid, tuple(golds), None, 0.0, 0.0, 0.0)
    s = score_answer(prediction, golds, dataset=dataset, lang=lang)
    return QuestionScore(qid, tuple(golds), prediction, s["exact_match"], s["f1"], s["rouge_l"])


def _group(records: Sequence[QuestionScore]) -> dict[str, float | int]:
    total = len(records)
    return {
        "exact": 100.0 * sum(r.exact_match for r in records) / total,
        "f1": 100.0 * sum(r.f1 for r in records) / total,
        "total": total,
    }


def aggregate(records: Iterable[QuestionScore]) -> dict[str, float | int]:
    """Average per-question scores into the official SQuAD v2.0 report, on a 0-100 scale.

    Keys, in the official order: exact, f1, total, then HasAns_exact/_f1/_total and NoAns_exact/_f1/_total
    (each group only when it has questions, as in evaluate-v2.0.py), then rouge_l over all questions.
    """
    records = list(records)
    if not records:
        raise ValueError("no questions to aggregate")
    out = _group(records)
    for prefix, keep in (("HasAns", True), ("NoAns", False)):
        group = [r for r in records if r.has_answer is keep]
        if group:
            out.update({f"{prefix}_{k}": v for k, v in _group(group).items()})
    out["rouge_l"] = 100.0 * sum(r.rouge_l for r in records) / len(records)
    return out


def abstention_scores(records: Sequence[QuestionScore], *, dataset: Dataset, lang: str = "en") -> dict[str, float]:
    """How often the model abstained, and what a model that always abstains would score on the same questions.

    `abstention_rate` (0-100) is the share of questions whose prediction normalizes to nothing under `dataset`'s
    rules (a missing prediction is not counted as an abstention). `always_abstain_exact/_f1/_rouge_l` score the
    empty answer against every question's golds with the same rules as the model: on SQuAD v2 that is the share
    of unanswerable questions, on MLQA 0. A model that does not beat it on EM has learned nothing the report can
    call retention.
    """
    records = list(records)
    if not records:
        raise ValueError("no questions to score")
    abstained = sum(1 for r in records if r.prediction is not None and _abstains(r.prediction, dataset, lang))
    empty = [score_answer("", r.golds, dataset=dataset, lang=lang) for r in records]
    total = len(records)
    return {
        "abstention_rate": 100.0 * abstained / total,
        "always_abstain_exact": 100.0 * sum(s["exact_match"] for s in empty) / total,
        "always_abstain_f1": 100.0 * sum(s["f1"] for s in empty) / total,
        "always_abstain_rouge_l": 100.0 * sum(s["rouge_l"] for s in empty) / total,
    }
