"""qadistill.metrics against hand-computed cases and literal transcriptions of the official scripts."""

from __future__ import annotations

import collections
import json
import random
import re
import string
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from qadistill import metrics
from qadistill.metrics import QuestionScore, abstention_scores, aggregate, rouge_l, score_answer, score_question

# ---------------------------------------------------------------------------------------------------------
# Reference: the official SQuAD v2.0 script (evaluate-v2.0.py), transcribed literally.
# ---------------------------------------------------------------------------------------------------------


def ref_squad_normalize_answer(s):
    def remove_articles(text):
        regex = re.compile(r"\b(a|an|the)\b", re.UNICODE)
        return re.sub(regex, " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def ref_squad_get_tokens(s):
    if not s:
        return []
    return ref_squad_normalize_answer(s).split()


def ref_squad_compute_exact(a_gold, a_pred):
    return int(ref_squad_normalize_answer(a_gold) == ref_squad_normalize_answer(a_pred))


def ref_squad_compute_f1(a_gold, a_pred):
    gold_toks = ref_squad_get_tokens(a_gold)
    pred_toks = ref_squad_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def ref_squad_make_qid_to_has_ans(dataset):
    qid_to_has_ans = {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid_to_has_ans[qa["id"]] = bool(qa["answers"])
    return qid_to_has_ans


def ref_squad_get_raw_scores(dataset, preds):
    exact_scores = {}
    f1_scores = {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid = qa["id"]
                gold_answers = [a["text"] for a in qa["answers"] if ref_squad_normalize_answer(a["text"])]
                if not gold_answers:
                    gold_answers = [""]
                if qid not in preds:
                    print(f"Missing prediction for {qid}")
                    continue
                a_pred = preds[qid]
                exact_scores[qid] = max(ref_squad_compute_exact(a, a_pred) for a in gold_answers)
                f1_scores[qid] = max(ref_squad_compute_f1(a, a_pred) for a in gold_answers)
    return exact_scores, f1_scores


def ref_squad_make_eval_dict(exact_scores, f1_scores, qid_list=None):
    if not qid_list:
        total = len(exact_scores)
        return collections.OrderedDict(
            [
                ("exact", 100.0 * sum(exact_scores.values()) / total),
                ("f1", 100.0 * sum(f1_scores.values()) / total),
                ("total", total),
            ]
        )
    else:
        total = len(qid_list)
        return collections.OrderedDict(
            [
                ("exact", 100.0 * sum(exact_scores[k] for k in qid_list) / total),
                ("f1", 100.0 * sum(f1_scores[k] for k in qid_list) / total),
                ("total", total),
            ]
        )


def ref_squad_evaluate(dataset, preds):
    """main() of evaluate-v2.0.py without a no-answer probability file (threshold 1.0 changes nothing)."""
    qid_to_has_ans = ref_squad_make_qid_to_has_ans(dataset)
    has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
    no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
    exact_raw, f1_raw = ref_squad_get_raw_scores(dataset, preds)
    out_eval = ref_squad_make_eval_dict(exact_raw, f1_raw)
    if has_ans_qids:
        for k, v in ref_squad_make_eval_dict(exact_raw, f1_raw, qid_list=has_ans_qids).items():
            out_eval[f"HasAns_{k}"] = v
    if no_ans_qids:
        for k, v in ref_squad_make_eval_dict(exact_raw, f1_raw, qid_list=no_ans_qids).items():
            out_eval[f"NoAns_{k}"] = v
    return dict(out_eval)


# ---------------------------------------------------------------------------------------------------------
# Reference: the official MLQA script (mlqa_evaluation_v1.py), transcribed literally.
# ---------------------------------------------------------------------------------------------------------

PUNCT = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")}.union(
    string.punctuation
)
WHITESPACE_LANGS = ["en", "es", "hi", "vi", "de", "ar"]
MIXED_SEGMENTATION_LANGS = ["zh"]


def ref_whitespace_tokenize(text):
    return text.split()


def ref_mixed_segmentation(text):
    segs_out = []
    temp_str = ""
    for char in text:
        if re.search(r"[\u4e00-\u9fa5]", char) or char in PUNCT:
            if temp_str != "":
                ss = ref_whitespace_tokenize(temp_str)
                segs_out.extend(ss)
                temp_str = ""
            segs_out.append(char)
        else:
            temp_str += char
    if temp_str != "":
        ss = ref_whitespace_tokenize(temp_str)
        segs_out.extend(ss)
    return segs_out


def ref_mlqa_normalize_answer(s, lang):
    def remove_articles(text, lang):
        if lang == "en":
            return re.sub(r"\b(a|an|the)\b", " ", text)
        elif lang == "es":
            return re.sub(r"\b(un|una|unos|unas|el|la|los|las)\b", " ", text)
        elif lang == "hi":
            return text
        elif lang == "vi":
            return re.sub(r"\b(của|là|cái|chiếc|những)\b", " ", text)
        elif lang == "de":
            return re.sub(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b", " ", text)
        elif lang == "ar":
            return re.sub("\\sال^|ال", " ", text)
        elif lang == "zh":
            return text
        else:
            raise Exception(f"Unknown Language {lang}")

    def white_space_fix(text, lang):
        if lang in WHITESPACE_LANGS:
            tokens = ref_whitespace_tokenize(text)
        elif lang in MIXED_SEGMENTATION_LANGS:
            tokens = ref_mixed_segmentation(text)
        else:
            raise Exception(f"Unknown Language {lang}")
        return " ".join([t for t in tokens if t.strip() != ""])

    def remove_punc(text):
        return "".join(ch for ch in text if ch not in PUNCT)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s)), lang), lang)


def ref_mlqa_f1_score(prediction, ground_truth, lang):
    prediction_tokens = ref_mlqa_normalize_answer(prediction, lang).split()
    ground_truth_tokens = ref_mlqa_normalize_answer(ground_truth, lang).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def ref_mlqa_exact_match_score(prediction, ground_truth, lang):
    return ref_mlqa_normalize_answer(prediction, lang) == ref_mlqa_normalize_answer(ground_truth, lang)


def ref_mlqa_metric_max_over_ground_truths(metric_fn, prediction, ground_truths, lang):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth, lang)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def ref_mlqa_evaluate(dataset, predictions, lang):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                ground_truths = list(map(lambda x: x["text"], qa["answers"]))
                prediction = predictions[qa["id"]]
                exact_match += ref_mlqa_metric_max_over_ground_truths(
                    ref_mlqa_exact_match_score, prediction, ground_truths, lang
                )
                f1 += ref_mlqa_metric_max_over_ground_truths(ref_mlqa_f1_score, prediction, ground_truths, lang)
    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total
    return {"exact_match": exact_match, "f1": f1}


# ---------------------------------------------------------------------------------------------------------
# Generated prediction/gold pairs
# ---------------------------------------------------------------------------------------------------------

VOCAB = [
    # articles (English, German, Spanish, Vietnamese), in several cases
    "a", "an", "the", "The", "THE", "A", "An",
    "der", "die", "das", "den", "dem", "des", "ein", "eine", "einer", "eines", "einem", "einen", "Die", "Der",
    "el", "la", "los", "las", "un", "una", "của", "những",
    # words that contain an article but are not one
    "theory", "anthem", "dieser", "Ader", "another", "eineinhalb",
    # English words and stemming pairs
    "Beatles", "Denver", "Broncos", "running", "runs", "ran", "runner", "cities", "city", "Paris", "of", "and",
    # German words with umlauts and ß
    "Größe", "Grüße", "größe", "Straße", "Strasse", "über", "Ärger", "Mädchen", "Fußball",
    # other scripts
    "café", "naïve", "Dónde", "الكتاب", "بالكتاب", "北京", "大学", "नमस्ते",
    # numbers and mixed tokens
    "1914", "1918", "1914—1918", "3.5", "50%", "U.S.", "rock'n'roll", "e-mail",
    # punctuation, ASCII and Unicode
    ",", ".", "!", "?", "'s", '"', "(", ")", "-", "„", "“", "”", "«", "»", "—", "–", "¿", "¡", "…", "·", "‚", "‘",
    "’", "$", "€", "§", "°", "『", "』", "、", "。",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "", "  ", "\t", "\u00a0", "\n"]
MLQA_TEST_LANGS = ["en", "de", "es", "vi", "ar", "zh", "hi"]


def _phrase(rng: random.Random, max_len: int = 5) -> str:
    n = rng.randint(0, max_len)
    out = ""
    for i in range(n):
        if i:
            out += rng.choice(SEPARATORS)
        out += rng.choice(VOCAB)
    if rng.random() < 0.2:
        out = rng.choice(["", " ", "("]) + out + rng.choice(["", ".", " ", "!", "“"])
    return out


def _perturb(rng: random.Random, text: str) -> str:
    """A prediction that partly overlaps a gold: drop/add/re-case tokens and punctuation."""
    toks = text.split()
    if toks and rng.random() < 0.5:
        del toks[rng.randrange(len(toks))]
    if rng.random() < 0.5:
        toks.insert(rng.randint(0, len(toks)), rng.choice(VOCAB))
    if toks and rng.random() < 0.3:
        i = rng.randrange(len(toks))
        toks[i] = toks[i].upper() if rng.random() < 0.5 else toks[i].lower()
    return rng.choice([" ", "  ", "\u00a0"]).join(toks)


def generated_cases(seed: int = 20240229, n: int = 420) -> list[tuple[str, list[str]]]:
    """(prediction, golds) pairs; golds is sometimes [] (unanswerable) or contains normalize-to-empty texts."""
    rng = random.Random(seed)
    cases: list[tuple[str, list[str]]] = []
    for _ in range(n):
        golds = [_phrase(rng) for _ in range(rng.randint(1, 3))]
        golds = [g for g in golds if g] or [rng.choice(VOCAB)]
        r = rng.random()
        if r < 0.45:
            pred = _perturb(rng, rng.choice(golds))
        elif r < 0.55:
            pred = rng.choice(golds)
        elif r < 0.65:
            pred = ""
        else:
            pred = _phrase(rng)
        if rng.random() < 0.1:
            golds = []
        cases.append((pred, golds))
    return cases


CASES = generated_cases()


def test_generated_cases_cover_the_tricky_parts() -> None:
    # The generator must actually produce the situations the agreement tests are meant to exercise.
    assert len(CASES) >= 400
    assert sum(1 for _, g in CASES if not g) >= 20
    assert sum(1 for p, _ in CASES if p == "") >= 20
    scores = [ref_squad_compute_f1(g[0], p) for p, g in CASES if g]
    assert sum(1 for s in scores if 0 < s < 1) >= 50  # partial overlaps
    assert sum(1 for p, g in CASES if g and p and any(ref_squad_compute_exact(x, p) for x in g)) >= 30
    assert any(ref_squad_normalize_answer(x) == "" for _, g in CASES for x in g)
    assert any(ref_mlqa_normalize_answer(p, "de") != ref_squad_normalize_answer(p) for p, _ in CASES)


def test_squad_v2_agrees_with_official_script_on_generated_pairs() -> None:
    for pred, golds in CASES:
        gold_answers = [a for a in golds if ref_squad_normalize_answer(a)] or [""]
        want_em = max(ref_squad_compute_exact(a, pred) for a in gold_answers)
        want_f1 = max(ref_squad_compute_f1(a, pred) for a in gold_answers)
        got = score_answer(pred, golds, dataset="squad_v2")
        assert (got["exact_match"], got["f1"]) == (want_em, want_f1), (pred, golds)
        for g in golds + [pred]:
            assert metrics.normalize_answer(g) == ref_squad_normalize_answer(g)
            assert metrics.get_tokens(g) == ref_squad_get_tokens(g)
            assert metrics.compute_f1(g, pred) == ref_squad_compute_f1(g, pred)
            assert metrics.compute_exact(g, pred) == ref_squad_compute_exact(g, pred)


@pytest.mark.parametrize("lang", MLQA_TEST_LANGS)
def test_mlqa_agrees_with_official_script_on_generated_pairs(lang: str) -> None:
    for pred, golds in CASES:
        for text in golds + [pred]:
            assert metrics.mlqa_normalize_answer(text, lang) == ref_mlqa_normalize_answer(text, lang), text
        got = score_answer(pred, golds, dataset="mlqa", lang=lang)
        if not golds:  # MLQA has no unanswerable questions; ours: abstaining is right
            want = float(ref_mlqa_normalize_answer(pred, lang) == "")
            assert got["exact_match"] == got["f1"] == want
            continue
        want_em = ref_mlqa_metric_max_over_ground_truths(ref_mlqa_exact_match_score, pred, golds, lang)
        want_f1 = ref_mlqa_metric_max_over_ground_truths(ref_mlqa_f1_score, pred, golds, lang)
        assert (got["exact_match"], got["f1"]) == (want_em, want_f1), (pred, golds)


def test_mlqa_punct_set_is_the_official_one() -> None:
    probe = {chr(i) for i in range(0x3000)} | PUNCT | {chr(0x10FFFF), chr(0x10FFFE)}
    assert {c for c in probe if metrics.is_mlqa_punct(c)} == PUNCT & probe


def test_mixed_segmentation_agrees_with_official_script() -> None:
    for pred, golds in CASES:
        for text in golds + [pred]:
            assert metrics.mlqa_mixed_segmentation(text) == ref_mixed_segmentation(text)


def test_english_rouge_l_is_rouge_score_with_stemmer_on_generated_pairs() -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for pred, golds in CASES:
        if not golds:
            continue
        want = max(scorer.score(g, pred)["rougeL"].fmeasure for g in golds)
        assert score_answer(pred, golds, dataset="squad_v2")["rouge_l"] == want, (pred, golds)
        assert score_answer(pred, golds, dataset="mlqa", lang="en")["rouge_l"] == want


def _ref_lcs(a: list[str], b: list[str]) -> int:
    """Plain recursive LCS, independent of the table-based one in metrics."""
    from functools import cache

    @cache
    def go(i: int, j: int) -> int:
        if i == len(a) or j == len(b):
            return 0
        if a[i] == b[j]:
            return 1 + go(i + 1, j + 1)
        return max(go(i + 1, j), go(i, j + 1))

    return go(0, 0)


def test_german_rouge_l_is_lcs_f_measure_over_unicode_words_on_generated_pairs() -> None:
    for pred, golds in CASES:
        if not golds:
            continue
        want = 0.0
        p_toks = re.findall(r"\w+", pred.lower())
        for g in golds:
            g_toks = re.findall(r"\w+", g.lower())
            if p_toks and g_toks:
                lcs = _ref_lcs(g_toks, p_toks)
                p, r = lcs / len(p_toks), lcs / len(g_toks)
                want = max(want, 2 * p * r / (p + r) if p + r else 0.0)
        assert score_answer(pred, golds, dataset="mlqa", lang="de")["rouge_l"] == want, (pred, golds)


# ---------------------------------------------------------------------------------------------------------
# Hand-checked tricky cases
# ---------------------------------------------------------------------------------------------------------


def sq(pred: str, golds: list[str]) -> dict[str, float]:
    return score_answer(pred, golds, dataset="squad_v2")


def ml(pred: str, golds: list[str], lang: str) -> dict[str, float]:
    return score_answer(pred, golds, dataset="mlqa", lang=lang)


def test_english_articles_are_ignored_by_em_and_f1() -> None:
    assert sq("The Beatles", ["Beatles"]) == {"exact_match": 1.0, "f1": 1.0, "rouge_l": pytest.approx(2 / 3)}
    assert ml("The Beatles", ["Beatles"], "en")["exact_match"] == 1.0
    assert sq("theory", ["ory"])["exact_match"] == 0.0  # \b: 'the' inside a word stays
    # in German MLQA 'the' is an ordinary word
    got = ml("The Beatles", ["Beatles"], "de")
    assert got["exact_match"] == 0.0
    assert got["f1"] == pytest.approx(2 / 3)


def test_unicode_punctuation_only_counts_in_mlqa() -> None:
    # SQuAD v2.0 strips ASCII punctuation only: typographic quotes stay part of the token
    assert sq("„Größe“", ["Größe"]) == {"exact_match": 0.0, "f1": 0.0, "rouge_l": 1.0}
    assert ml("„Größe“", ["Größe"], "de")["exact_match"] == 1.0
    assert sq("«Paris»", ["Paris"])["exact_match"] == 0.0
    assert ml("«Paris»", ["Paris"], "en")["exact_match"] == 1.0
    assert sq('"Paris!"', ["Paris"])["exact_match"] == 1.0
    assert ml("¿Dónde?", ["dónde"], "es")["exact_match"] == 1.0
    assert sq("¿Dónde?", ["dónde"])["exact_match"] == 0.0
    # an em dash is removed without a space, so the two numbers fuse into one token
    assert metrics.mlqa_normalize_answer("1914—1918", "en") == "19141918"
    assert metrics.normalize_answer("1914—1918") == "1914—1918"
    assert metrics.normalize_answer("1914-1918") == "19141918"


def test_german_articles_are_removed_only_by_mlqa_german() -> None:
    assert ml("die Größe", ["Größe"], "de")["exact_match"] == 1.0
    assert ml("der Mann", ["dem Mann"], "de")["exact_match"] == 1.0
    assert ml("Die Größe", ["Größe"], "en")["exact_match"] == 0.0
    got = sq("die Größe", ["Größe"])
    assert got["exact_match"] == 0.0
    assert got["f1"] == pytest.approx(2 / 3)
    assert ml("dieser Mann", ["Mann"], "de")["exact_match"] == 0.0  # 'dieser' is not an article
    assert metrics.mlqa_normalize_answer("Ein Mädchen, eine Straße", "de") == "mädchen straße"


def test_umlauts_and_sharp_s_differ_in_german_rouge_l() -> None:
    assert rouge_l("Größe", "Grüße", lang="de") == 0.0
    assert rouge_l("Grüße", "Größe", lang="de") == 0.0
    assert rouge_l("Straße", "Strasse", lang="de") == 0.0
    assert rouge_l("GRÖSSE", "größe", lang="de") == 0.0  # no case folding of ß: 'grösse' != 'größe'
    assert rouge_l("Größe", "größe", lang="de") == 1.0
    assert rouge_l("die Größe des Hauses", "Größe", lang="de") == pytest.approx(2 * 0.25 / 1.25)
    # rouge_score keeps only [a-z0-9], so in English both become 'gr e': the reason German has its own tokens
    assert rouge_l("Größe", "Grüße", lang="en") == 1.0
    assert ml("Größe", ["Grüße"], "de") == {"exact_match": 0.0, "f1": 0.0, "rouge_l": 0.0}


def test_english_rouge_l_stems() -> None:
    assert sq("running", ["runs"]) == {"exact_match": 0.0, "f1": 0.0, "rouge_l": 1.0}
    assert rouge_l("running", "runs", lang="de") == 0.0
    assert rouge_l("the cities", "city", lang="en") == pytest.approx(2 / 3)


def test_empty_prediction_on_answerable_question_scores_zero() -> None:
    assert sq("", ["Paris"]) == {"exact_match": 0.0, "f1": 0.0, "rouge_l": 0.0}
    assert ml("", ["Paris"], "en") == {"exact_match": 0.0, "f1": 0.0, "rouge_l": 0.0}
    assert ml("", ["Größe"], "de") == {"exact_match": 0.0, "f1": 0.0, "rouge_l": 0.0}


def test_unanswerable_question_rewards_abstaining_only() -> None:
    one = {"exact_match": 1.0, "f1": 1.0, "rouge_l": 1.0}
    zero = {"exact_match": 0.0, "f1": 0.0, "rouge_l": 0.0}
    assert sq("", []) == one
    assert sq("  ", []) == one
    assert sq("The.", []) == one  # normalizes to nothing: an abstention for the official script too
    assert sq("Paris", []) == zero
    assert sq("unanswerable", []) == zero
    assert ml("", [], "de") == one
    assert ml("„“", [], "de") == one
    assert ml("Größe", [], "de") == zero


def test_gold_that_normalizes_to_nothing_is_dropped_like_the_official_script() -> None:
    # evaluate-v2.0.py filters golds by normalize_answer, so a gold "The" leaves only '' as correct
    assert sq("", ["The"])["exact_match"] == 1.0
    assert sq("", ["The"])["f1"] == 1.0
    assert sq("The", ["The"])["exact_match"] == 1.0
    # MLQA keeps such golds, and its F1 is 0 without token overlap even when both are empty
    assert ml("", ["the"], "en") == {"exact_match": 1.0, "f1": 0.0, "rouge_l": 0.0}


def test_several_golds_take_the_max() -> None:
    golds = ["Denver Broncos", "Broncos", "the Denver Broncos team"]
    assert sq("the Broncos", golds)["exact_match"] == 1.0
    got = sq("Denver", golds)
    assert got["exact_match"] == 0.0
    assert got["f1"] == pytest.approx(2 / 3)  # vs "Denver Broncos": P=1, R=1/2
    assert got["rouge_l"] == pytest.approx(2 / 3)
    assert sq("Broncos team", golds)["f1"] == pytest.approx(max(2 / 3, 2 / 3, 2 * 1 * (2 / 3) / (1 + 2 / 3)))


def test_other_mlqa_languages() -> None:
    assert metrics.mlqa_normalize_answer("الكتاب", "ar") == "كتاب"
    assert metrics.mlqa_normalize_answer("بالكتاب", "ar") == "ب كتاب"  # removed inside words too
    assert metrics.mlqa_normalize_answer("北京大学。", "zh") == "北 京 大 学"
    assert ml("北京", ["北京大学"], "zh")["f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert ml("la ciudad", ["ciudad"], "es")["exact_match"] == 1.0
    assert ml("những cái", ["cái"], "vi")["exact_match"] == 1.0


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'squad'"):
        score_answer("x", ["x"], dataset="squad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown MLQA language 'fr'"):
        score_answer("x", ["x"], dataset="mlqa", lang="fr")
    with pytest.raises(ValueError, match="unknown MLQA language"):
        metrics.mlqa_normalize_answer("x", "xx")


def test_scores_are_floats_in_unit_interval() -> None:
    for pred, golds in CASES[:100]:
        for got in (sq(pred, golds), ml(pred, golds, "de")):
            assert set(got) == {"exact_match", "f1", "rouge_l"}
            assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in got.values())


# ---------------------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------------------


def _synthetic_dataset(cases: list[tuple[str, list[str]]]) -> tuple[list[dict], dict[str, str]]:
    qas = [
        {"id": f"q{i}", "question": "?", "answers": [{"text": g, "answer_start": 0} for g in golds]}
        for i, (_, golds) in enumerate(cases)
    ]
    preds = {f"q{i}": pred for i, (pred, _) in enumerate(cases)}
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}], preds


def test_aggregate_equals_official_squad_v2_report_on_generated_pairs() -> None:
    dataset, preds = _synthetic_dataset(CASES)
    records = [score_question(f"q{i}", golds, pred, dataset="squad_v2") for i, (pred, golds) in enumerate(CASES)]
    got = aggregate(records)
    want = ref_squad_evaluate(dataset, preds)
    assert list(got) == list(want) + ["rouge_l"]
    assert {k: got[k] for k in want} == want  # bit-identical, same summation order
    assert got["rouge_l"] == 100.0 * sum(r.rouge_l for r in records) / len(records)


def test_aggregate_equals_official_mlqa_report_on_generated_pairs() -> None:
    answerable = [(p, g) for p, g in CASES if g]
    dataset, preds = _synthetic_dataset(answerable)
    for lang in ("en", "de"):
        records = [score_question(f"q{i}", g, p, dataset="mlqa", lang=lang) for i, (p, g) in enumerate(answerable)]
        got = aggregate(records)
        want = ref_mlqa_evaluate(dataset, preds, lang)
        assert (got["exact"], got["f1"]) == (want["exact_match"], want["f1"])
        assert "NoAns_total" not in got
        assert got["HasAns_total"] == got["total"] == len(answerable)


def test_aggregate_hand_values_and_groups() -> None:
    records = [
        QuestionScore("a", ("Paris",), "Paris", 1.0, 1.0, 1.0),
        QuestionScore("b", ("Denver Broncos",), "Denver", 0.0, 2 / 3, 2 / 3),
        QuestionScore("c", (), "", 1.0, 1.0, 1.0),
        QuestionScore("d", (), "Paris", 0.0, 0.0, 0.0),
    ]
    got = aggregate(records)
    assert got == {
        "exact": 50.0,
        "f1": pytest.approx(100 * (2 + 2 / 3) / 4),
        "total": 4,
        "HasAns_exact": 50.0,
        "HasAns_f1": pytest.approx(100 * (5 / 3) / 2),
        "HasAns_total": 2,
        "NoAns_exact": 50.0,
        "NoAns_f1": 50.0,
        "NoAns_total": 2,
        "rouge_l": pytest.approx(100 * (2 + 2 / 3) / 4),
    }
    only_noans = aggregate(records[2:])
    assert "HasAns_total" not in only_noans and only_noans["NoAns_total"] == 2
    with pytest.raises(ValueError, match="no questions"):
        aggregate([])


def test_abstention_rate_and_always_abstain_baseline() -> None:
    cases = [
        ("Paris", ["Paris"]),  # answers
        ("", ["Denver Broncos"]),  # abstains on an answerable question
        (" . ", ["1066"]),  # normalizes to nothing: abstains
        ("", []),  # abstains correctly
        ("Paris", []),  # answers an unanswerable question
        (None, []),  # no prediction: scores 0, not counted as abstaining
        ("x", ["The"]),  # gold normalizes to nothing: SQuAD v2 scores it as unanswerable, ROUGE-L does not
    ]
    records = [score_question(f"q{i}", golds, pred, dataset="squad_v2") for i, (pred, golds) in enumerate(cases)]
    got = abstention_scores(records, dataset="squad_v2")
    assert got["abstention_rate"] == pytest.approx(100 * 3 / 7)
    # Abstaining everywhere: right on q3, q4, q5 (unanswerable) and q6 (gold "The" is dropped, so "" matches).
    assert got["always_abstain_exact"] == pytest.approx(100 * 4 / 7)
    assert got["always_abstain_f1"] == pytest.approx(100 * 4 / 7)
    assert got["always_abstain_rouge_l"] == pytest.approx(100 * 3 / 7)  # ROUGE-L of "" against "The" is 0
    # The baseline is what a model answering "" everywhere really scores.
    empty = aggregate(score_question(f"q{i}", golds, "", dataset="squad_v2") for i, (_, golds) in enumerate(cases))
    assert (empty["exact"], empty["f1"], empty["rouge_l"]) == pytest.approx(
        (got["always_abstain_exact"], got["always_abstain_f1"], got["always_abstain_rouge_l"])
    )
    mlqa = [
        score_question("a", ["Größe"], "", dataset="mlqa", lang="de"),
        score_question("b", ["x"], "y", dataset="mlqa"),
    ]
    assert abstention_scores(mlqa, dataset="mlqa", lang="de") == {
        "abstention_rate": 50.0,
        "always_abstain_exact": 0.0,
        "always_abstain_f1": 0.0,
        "always_abstain_rouge_l": 0.0,
    }
    with pytest.raises(ValueError, match="no questions"):
        abstention_scores([], dataset="squad_v2")


def test_missing_prediction_scores_zero() -> None:
    rec = score_question("q", [], None, dataset="squad_v2")
    assert (rec.exact_match, rec.f1, rec.rouge_l, rec.has_answer) == (0.0, 0.0, 0.0, False)
    with pytest.raises(ValueError, match="unknown dataset"):
        score_question("q", [], None, dataset="nope")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Real data: score_files against the official scripts' transcriptions
# ---------------------------------------------------------------------------------------------------------


def _noisy_predictions(doc: dict, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    preds = {}
    for article in doc["data"]:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                golds = [a["text"] for a in qa["answers"]]
                r = rng.random()
                if golds and r < 0.5:
                    preds[qa["id"]] = _perturb(rng, rng.choice(golds))
                elif r < 0.7:
                    preds[qa["id"]] = ""
                else:
                    words = p["context"].split()
                    i = rng.randrange(len(words))
                    preds[qa["id"]] = " ".join(words[i : i + rng.randint(1, 6)])
    return preds


@pytest.mark.realdata
def test_score_files_matches_official_squad_v2_on_real_dev(shared_data: Path, tmp_path: Path) -> None:
    from qadistill.score import score_files

    data = shared_data / "squad_v2" / "dev-v2.0.labelled-half.json"
    doc = json.loads(data.read_text(encoding="utf-8"))
    preds = _noisy_predictions(doc, seed=7)
    pred_file = tmp_path / "preds.json"
    pred_file.write_text(json.dumps(preds), encoding="utf-8")
    got = score_files(data, pred_file)
    want = ref_squad_evaluate(doc["data"], preds)
    assert {k: got[k] for k in want} == want
    assert got["total"] == 6078 and got["missing"] == 0
    assert 10 < got["f1"] < 90


@pytest.mark.realdata
def test_score_files_matches_official_mlqa_on_real_dev_de(shared_data: Path, tmp_path: Path) -> None:
    from qadistill.score import score_files

    data = shared_data / "mlqa" / "dev-context-de-question-de.json"
    doc = json.loads(data.read_text(encoding="utf-8"))
    preds = _noisy_predictions(doc, seed=11)
    pred_file = tmp_path / "preds.json"
    pred_file.write_text(json.dumps(preds, ensure_ascii=False), encoding="utf-8")
    got = score_files(data, pred_file)  # language inferred from the file name: de
    want = ref_mlqa_evaluate(doc["data"], preds, "de")
    assert (got["exact"], got["f1"]) == (want["exact_match"], want["f1"])
    assert got["exact"] != ref_mlqa_evaluate(doc["data"], preds, "en")["exact_match"]
