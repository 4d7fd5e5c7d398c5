"""A report that cannot be fooled: collapsed models, trivial baselines, the paper's claim per method (exact and
nominal sizes), paired-by-seed intervals, teacher seeds with propagated retention errors, and the stored real
SmolLM2 SQuAD v2 run that used to claim 122.86% retention."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from qadistill.experiments.config import config_from_dict
from qadistill.experiments.plan import plan_experiment
from qadistill.experiments.runner import nominal_sizes
from qadistill.models import KNOWN_MODELS, nominal_params
from qadistill.report import collect_results, compute_findings, summarize, write_report
from qadistill.report.collapse import COLLAPSE_ABSTENTION, collapse_reasons
from qadistill.report.stats import paired_difference, t_critical, t_within

REPO = Path(__file__).resolve().parents[2]
STORED_RUN = REPO / "docs" / "results" / "collapsed-example"
QWEN7 = KNOWN_MODELS["qwen2.5-7b"]
QWEN3 = KNOWN_MODELS["qwen2.5-3b"]
QWEN15 = KNOWN_MODELS["qwen2.5-1.5b"]


def metrics(model: str, role: str, method: str, seed: int, em: float, **extra) -> dict:
    """A runner metrics.json; ROUGE-L and F1 default to EM, the teacher to the 7B Qwen2.5 with its nominal size."""
    doc = {
        "model": model,
        "role": role,
        "method": method,
        "dataset": "squad_v2",
        "shots": 1,
        "split": "test",
        "seed": seed,
        "params": QWEN7.params_total,
        "teacher": "qwen2.5-7b",
        "teacher_params": QWEN7.params_total,
        "teacher_nominal_params": QWEN7.nominal_params,
        "exact": em,
        "f1": em,
        "rouge_l": em,
        "total": 100,
    }
    doc.update(extra)
    return doc


def write_run(root: Path, docs: list[dict]) -> Path:
    for i, doc in enumerate(docs):
        folder = root / f"{doc['model']}-{doc['method']}-{doc['shots']}-{doc['split']}-{doc['seed']}-{i}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")
    return root


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def row_of(rows: list[dict[str, str]], model: str, method: str) -> dict[str, str]:
    (row,) = [r for r in rows if r["model"] == model and r["method"] == method]
    return row


def teacher(seed: int = 0, em: float = 70.0, **extra) -> dict:
    return metrics("qwen2.5-7b", "teacher", "teacher", seed, em, nominal_params=QWEN7.nominal_params, **extra)


def student(model: str, params: int, method: str, em: float, seed: int = 0, **extra) -> dict:
    info = KNOWN_MODELS.get(model)
    nominal = {"nominal_params": info.nominal_params} if info else {}
    return metrics(model, "student", method, seed, em, params=params, **nominal, **extra)


# ---------------------------------------------------------------------------------------------------------
# Collapsed models
# ---------------------------------------------------------------------------------------------------------


def test_collapse_reasons_thresholds() -> None:
    fine = {"em": 50.0, "abstention": 30.0, "hasans_f1": 40.0, "always_abstain_em": 45.0, "untuned_hasans_f1": 20.0}
    assert collapse_reasons(**fine) == []
    assert COLLAPSE_ABSTENTION == 90.0
    assert collapse_reasons(**(fine | {"abstention": 90.0})) == []  # "more than 90%"
    assert collapse_reasons(**(fine | {"abstention": 90.5})) == ["abstains on 90.5% of questions (> 90%)"]
    assert collapse_reasons(**(fine | {"hasans_f1": 19.99})) == ["HasAns F1 19.99 below the untuned model's 20.00"]
    assert collapse_reasons(**(fine | {"em": 45.0})) == ["EM 45.00 not above always-abstain 45.00"]
    assert collapse_reasons(**(fine | {"em": 45.01})) == []
    # Criteria without their numbers (older result files, no untuned run) are not applied.
    assert (
        collapse_reasons(em=0.0, abstention=None, hasans_f1=None, always_abstain_em=None, untuned_hasans_f1=None) == []
    )


def squad_extra(em: float, *, abstention: float, hasans_f1: float) -> dict:
    """SQuAD v2 keys of a model on 100 questions, 45 of them unanswerable (always abstaining scores 45)."""
    return {
        "HasAns_exact": em,
        "HasAns_f1": hasans_f1,
        "HasAns_total": 55,
        "NoAns_exact": 50.0,
        "NoAns_f1": 50.0,
        "NoAns_total": 45,
        "abstention_rate": abstention,
        "always_abstain_exact": 45.0,
        "always_abstain_f1": 45.0,
        "always_abstain_rouge_l": 45.0,
    }


@pytest.fixture()
def collapse_run(tmp_path: Path) -> Path:
    """A 7B teacher, its untuned base model and four students of one method; three of them collapsed, each
    reducing the parameters more than the healthy one, so any of them would win the claim if counted."""
    m = "distill-srkl"
    return write_run(
        tmp_path / "run",
        [
            teacher(em=70.0, **squad_extra(70.0, abstention=20.0, hasans_f1=60.0)),
            metrics("qwen2.5-7b", "untuned", "untuned", 0, 30.0, **squad_extra(20.0, abstention=5.0, hasans_f1=20.0)),
            student("qwen2.5-3b", QWEN3.params_total, m, 65.0, **squad_extra(65.0, abstention=40.0, hasans_f1=50.0)),
            student("abstainer", 3_000_000_000, m, 66.0, **squad_extra(66.0, abstention=95.0, hasans_f1=30.0)),
            student("worse-than-base", 2_500_000_000, m, 66.0, **squad_extra(66.0, abstention=30.0, hasans_f1=15.0)),
            student("trivial", 2_000_000_000, m, 45.0, **squad_extra(45.0, abstention=60.0, hasans_f1=25.0)),
        ],
    )


def test_collapsed_models_are_flagged_and_left_out_of_every_claim(collapse_run: Path) -> None:
    paths = write_report(collapse_run)
    rows = read_rows(paths.summary_csv)
    assert row_of(rows, "abstainer", "distill-srkl")["flag"] == "abstains on 95.0% of questions (> 90%)"
    assert row_of(rows, "worse-than-base", "distill-srkl")["flag"] == "HasAns F1 15.00 below the untuned model's 20.00"
    assert row_of(rows, "trivial", "distill-srkl")["flag"] == "EM 45.00 not above always-abstain 45.00"
    healthy = row_of(rows, "qwen2.5-3b", "distill-srkl")
    assert healthy["flag"] == "" and float(healthy["retention_em"]) == pytest.approx(100 * 65 / 70, abs=1e-6)
    for name in ("abstainer", "worse-than-base", "trivial"):
        row = row_of(rows, name, "distill-srkl")
        assert row["retention_em"] == row["retention_rouge_l"] == row["retention_em_err"] == ""  # never reported
        assert float(row["abstention_mean"]) > 0 and float(row["always_abstain_em"]) == 45.0

    findings = compute_findings(summarize(collect_results(collapse_run)))
    assert sorted(f.data["model"] for f in findings.collapsed) == ["abstainer", "trivial", "worse-than-base"]
    (claim,) = findings.retention_claims
    assert claim.data["claimed"] is True
    assert claim.data["model_exact"] == claim.data["model_nominal"] == "qwen2.5-3b"
    assert claim.data["excluded"] == ["abstainer", "trivial", "worse-than-base"]
    assert claim.text.endswith("Left out as collapsed: abstainer, trivial, worse-than-base.")

    md = paths.report_md.read_text(encoding="utf-8")
    assert (
        "abstainer / distill-srkl (student of qwen2.5-7b), squad_v2, one-shot, test: abstains on 95.0% of questions "
        "(> 90%); its retention is not reported and it is left out of every retention claim."
    ) in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| abstainer |"))
    assert line.endswith("| 95.00 ± 0.00 | collapsed | collapsed | 1 |")
    assert "Retention of a collapsed model is not reported" in md


def test_untuned_model_and_always_abstain_are_baselines_not_students(collapse_run: Path) -> None:
    rows = summarize(collect_results(collapse_run))
    untuned = next(r for r in rows if r.role == "untuned")
    assert (untuned.retention_em, untuned.flag) == (None, "")
    findings = compute_findings(rows)
    assert all("untuned" not in f.text.split(":")[0] for f in findings.retention_claims)
    (baseline,) = findings.baselines
    assert baseline.data["always_abstain"] == (45.0, 45.0, 45.0)
    assert baseline.text == (
        "squad_v2, one-shot, test: always abstaining scores EM 45.00, F1 45.00, ROUGE-L 45.00 (the share of "
        "unanswerable questions); the untuned qwen2.5-7b scores EM 30.00, F1 30.00, ROUGE-L 30.00, HasAns F1 20.00."
    )
    md = write_report(collapse_run).report_md.read_text(encoding="utf-8")
    assert "| qwen2.5-7b | untuned (baseline) | 7.62B | 0.00 | 0.00 | 30.00 ± 0.00 |" in md
    assert "| 5.00 ± 0.00 | baseline | baseline | 1 |" in md  # abstention, then no retention for a baseline
    assert "| *always abstain* | *baseline* | – | – | – | 45.00 | 45.00 | 45.00 | – | – | – | – | 100.00 |" in md
    assert "- Students: qwen2.5-3b (3.09B, teacher qwen2.5-7b), abstainer" in md  # the untuned model is not one
    assert "- Untuned baselines (base models, no training): qwen2.5-7b" in md


def test_a_teacher_below_always_abstain_gets_no_retention_claim(tmp_path: Path) -> None:
    extra = squad_extra(35.0, abstention=50.0, hasans_f1=10.0)
    root = write_run(
        tmp_path / "run",
        [teacher(em=35.0, **extra), student("qwen2.5-3b", QWEN3.params_total, "finetune", 43.0, **extra)],
    )
    paths = write_report(root)
    rows = read_rows(paths.summary_csv)
    assert row_of(rows, "qwen2.5-7b", "teacher")["flag"] == "EM 35.00 not above always-abstain 45.00"
    assert row_of(rows, "qwen2.5-3b", "finetune")["retention_em"] == ""
    md = paths.report_md.read_text(encoding="utf-8")
    assert (
        "method finetune: no claim: the teacher itself is flagged (EM 35.00 not above always-abstain 45.00), so no "
        "retention is reported."
    ) in md


def test_always_abstain_from_group_totals_of_older_result_files(tmp_path: Path) -> None:
    old_squad = {"HasAns_total": 55, "NoAns_total": 45}
    old_mlqa = {"dataset": "mlqa-de", "HasAns_total": 100}
    root = write_run(
        tmp_path / "run",
        [
            teacher(em=60.0, **old_squad),
            student("qwen2.5-3b", QWEN3.params_total, "finetune", 50.0),  # no totals: shares the question set's
            teacher(em=40.0, **old_mlqa),
            student("qwen2.5-3b", QWEN3.params_total, "finetune", 0.0, **old_mlqa),
            teacher(em=40.0, split="validation"),  # no totals anywhere on these questions: unknown
        ],
    )
    rows = summarize(collect_results(root))
    by = {(r.model, r.dataset, r.split): r for r in rows}
    assert by[("qwen2.5-3b", "squad_v2", "test")].always_abstain_em == pytest.approx(45.0)
    assert by[("qwen2.5-7b", "mlqa-de", "test")].always_abstain_em == 0.0
    assert by[("qwen2.5-3b", "mlqa-de", "test")].flag == "EM 0.00 not above always-abstain 0.00"
    assert by[("qwen2.5-7b", "squad_v2", "validation")].always_abstain_em is None


# ---------------------------------------------------------------------------------------------------------
# The paper's claim
# ---------------------------------------------------------------------------------------------------------


def test_registry_nominal_sizes_reproduce_the_papers_reduction() -> None:
    assert nominal_params("Qwen/Qwen2.5-7B-Instruct") == 7_000_000_000
    assert nominal_params("qwen2.5-3b") == 3_000_000_000
    assert nominal_params("smollm2-135m-instruct") == 135_000_000
    assert nominal_params("pythia-1.4b") == 1_400_000_000
    assert nominal_params("/some/local/folder") is None and nominal_params(None) is None
    assert 100 * (1 - QWEN3.nominal_params / QWEN7.nominal_params) == pytest.approx(57.142857, abs=1e-5)
    assert 100 * (1 - QWEN3.params_total / QWEN7.params_total) == pytest.approx(59.4789, abs=1e-4)


def test_runner_records_nominal_sizes_of_registry_models_only() -> None:
    doc = {
        "name": "sizes",
        "teachers": [
            {
                "name": "qwen-7b",
                "model": "Qwen/Qwen2.5-7B-Instruct",
                "students": [
                    {"name": "qwen-3b", "model": "Qwen/Qwen2.5-3B"},
                    {"name": "qwen-7b-half", "prune": "half"},
                ],
            }
        ],
        "methods": [{"name": "finetune", "kind": "finetune"}],
        "datasets": ["squad_v2"],
    }
    plan = plan_experiment(config_from_dict(doc))
    sizes = {(s.model, s.role): nominal_sizes(plan, s) for s in plan.evaluations}
    assert sizes[("qwen-7b", "teacher")] == (7_000_000_000, 7_000_000_000)
    assert sizes[("qwen-3b", "student")] == (3_000_000_000, 7_000_000_000)
    assert sizes[("qwen-7b-half", "student")] == (None, 7_000_000_000)  # pruned: the report uses exact counts


@pytest.fixture()
def claim_run(tmp_path: Path) -> Path:
    """Teacher Qwen2.5-7B (EM 60, ROUGE-L 70) and students of three methods, two seeds each.

    distill-srkl: 3B keeps 95%/95%, a pruned 7B with 42% of the parameters (58.0% fewer) keeps 91.7%/91.4%, 1.5B
    fails ROUGE-L (88.6%). By exact counts the 3B (59.5%) goes furthest; by nominal sizes the 3B is 57.1% and the
    pruned student, which has no nominal size, 58.0%. distill-fkl: only the 3B keeps (57.1% nominal, 7B -> 3B).
    finetune: only the pruned student keeps, at exactly 90%; never the other methods' larger reductions.
    """
    pruned = round(QWEN7.params_total * 0.42)
    plan = {
        "distill-srkl": [("qwen2.5-3b", QWEN3.params_total, 57, 66.5), ("qwen2.5-7b-L12", pruned, 55, 64),
                         ("qwen2.5-1.5b", QWEN15.params_total, 55, 62)],
        "distill-fkl": [("qwen2.5-3b", QWEN3.params_total, 56, 65), ("qwen2.5-7b-L12", pruned, 50, 60)],
        "finetune": [("qwen2.5-3b", QWEN3.params_total, 50, 60), ("qwen2.5-7b-L12", pruned, 54, 63),
                     ("qwen2.5-1.5b", QWEN15.params_total, 40, 50)],
    }  # fmt: skip
    docs = [teacher(seed, 60.0 + d, rouge_l=70.0 + d) for seed, d in ((0, -1.0), (1, 1.0))]
    for method, students in plan.items():
        for name, params, em, rl in students:
            for seed, d in ((0, -0.5), (1, 0.5)):
                docs.append(student(name, params, method, em + d, seed=seed, rouge_l=rl + d))
    return write_run(tmp_path / "run", docs)


def test_claim_per_method_by_exact_and_nominal_sizes(claim_run: Path) -> None:
    claims = {f.data["method"]: f for f in compute_findings(summarize(collect_results(claim_run))).retention_claims}
    assert set(claims) == {"distill-srkl", "distill-fkl", "finetune"}  # one per method, never the best of them

    srkl = claims["distill-srkl"].data
    assert (srkl["model_exact"], srkl["reduction_exact"]) == ("qwen2.5-3b", pytest.approx(59.4789, abs=1e-4))
    assert (srkl["model_nominal"], srkl["reduction_nominal"]) == ("qwen2.5-7b-L12", pytest.approx(58.0, abs=1e-6))
    assert srkl["nominal_from_names"] is False

    fkl = claims["distill-fkl"]
    assert (fkl.data["model_nominal"], fkl.data["reduction_nominal"]) == ("qwen2.5-3b", pytest.approx(57.142857))
    assert fkl.data["nominal_from_names"] is True
    assert fkl.text == (
        "squad_v2, one-shot, test, teacher qwen2.5-7b, method distill-fkl: keeps ≥ 90% of the teacher's EM and "
        "ROUGE-L at up to 59.5% fewer parameters by exact counts (qwen2.5-3b: EM 93.3 ± 2.5%, ROUGE-L 92.9 ± 2.1%) "
        "and up to 57.1% by nominal sizes (qwen2.5-3b: 7B → 3B)."
    )

    finetune = claims["finetune"].data
    assert finetune["claimed"] is True  # 54/60 and 63/70: exactly 90%
    assert (finetune["model_exact"], finetune["reduction_exact"]) == ("qwen2.5-7b-L12", pytest.approx(58.0))
    assert finetune["reduction_nominal"] == pytest.approx(58.0)
    assert "qwen2.5-7b-L12 has no nominal size (a pruned student or a model outside the registry)" in (
        claims["finetune"].text
    )


def test_claim_reports_the_closest_student_when_none_keeps_90_percent(claim_run: Path) -> None:
    docs = [teacher(0, 60.0, rouge_l=70.0), student("qwen2.5-3b", QWEN3.params_total, "finetune", 30.0, rouge_l=60.0)]
    root = write_run(claim_run.parent / "none", docs)
    (claim,) = compute_findings(summarize(collect_results(root))).retention_claims
    assert claim.data == claim.data | {"claimed": False, "closest": "qwen2.5-3b"}
    assert "no student keeps ≥ 90% of both; the closest, qwen2.5-3b at 59.5% fewer parameters, keeps EM 50.0" in (
        claim.text
    )


# ---------------------------------------------------------------------------------------------------------
# Statistics: t quantiles, paired intervals, teacher seeds and retention errors
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "table"), [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423), (120, 1.9799)]
)
def test_t_critical_matches_the_published_table(df: int, table: float) -> None:
    assert t_critical(df) == pytest.approx(table, abs=5e-5)
    assert t_within(t_critical(df), df) == pytest.approx(0.95, abs=1e-10)


def test_paired_interval_against_a_hand_computed_example() -> None:
    # Per-seed differences 3, 4, 1: mean 8/3, sd sqrt(7/3), t(0.975, 2) = 4.302653 (table).
    diff = paired_difference({0: 50.0, 1: 54.0, 2: 49.0, 7: 10.0}, {0: 47.0, 1: 50.0, 2: 48.0, 9: 90.0})
    half = 4.302653 * math.sqrt(7 / 3) / math.sqrt(3)
    assert diff.n == 3  # only seeds both have are paired
    assert diff.mean == pytest.approx(8 / 3)
    assert (diff.low, diff.high) == (pytest.approx(8 / 3 - half, abs=1e-5), pytest.approx(8 / 3 + half, abs=1e-5))
    assert (round(diff.low, 3), round(diff.high, 3)) == (-1.128, 6.461)
    assert diff.excludes_zero is False
    # Differences 2, 3, 4: mean 3, sd 1 -> [3 - 2.484, 3 + 2.484], which excludes 0.
    tight = paired_difference({0: 12.0, 1: 13.0, 2: 14.0}, {0: 10.0, 1: 10.0, 2: 10.0})
    assert (tight.low, tight.high) == (
        pytest.approx(3 - 4.302653 / math.sqrt(3), abs=1e-5),
        pytest.approx(5.4841, abs=1e-4),
    )
    assert tight.excludes_zero is True
    one = paired_difference({0: 5.0}, {0: 3.0})
    assert (one.mean, one.n, one.low, one.excludes_zero) == (2.0, 1, None, None)
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_distilled_minus_finetuned_in_the_report(tmp_path: Path) -> None:
    docs = [teacher(s, 70.0) for s in (0, 1, 2)]
    for seed, (d, f) in enumerate(((50.0, 47.0), (54.0, 50.0), (49.0, 48.0))):
        docs.append(student("qwen2.5-3b", QWEN3.params_total, "distill-srkl", d, seed=seed))
        docs.append(student("qwen2.5-3b", QWEN3.params_total, "finetune", f, seed=seed))
    docs.append(student("qwen2.5-1.5b", QWEN15.params_total, "distill-srkl", 40.0))
    docs.append(student("qwen2.5-1.5b", QWEN15.params_total, "finetune", 38.0))
    md = write_report(write_run(tmp_path / "run", docs)).report_md.read_text(encoding="utf-8")
    assert (
        "qwen2.5-3b, squad_v2 one-shot test: distill-srkl minus finetune EM +2.67 (95% CI [-1.13, +6.46] over 3 "
        "paired seeds, includes 0), F1 +2.67"
    ) in md
    assert "qwen2.5-1.5b, squad_v2 one-shot test: distill-srkl minus finetune EM +2.00 (CI n/a (1 seed))" in md


def test_teacher_seeds_give_std_and_a_propagated_retention_error(tmp_path: Path) -> None:
    students = [student("qwen2.5-3b", QWEN3.params_total, "finetune", em, seed=s) for s, em in enumerate((45, 48, 51))]
    many = write_run(tmp_path / "many", [teacher(s, em) for s, em in enumerate((58.0, 60.0, 62.0))] + students)
    rows = read_rows(write_report(many).summary_csv)
    t = row_of(rows, "qwen2.5-7b", "teacher")
    assert (t["n_seeds"], float(t["em_mean"]), float(t["em_std"])) == ("3", 60.0, 2.0)
    s = row_of(rows, "qwen2.5-3b", "finetune")
    assert float(s["retention_em"]) == pytest.approx(80.0)
    # delta method: 80 * sqrt((3/48)^2 + (2/60)^2)
    assert float(s["retention_em_err"]) == pytest.approx(80 * math.sqrt((3 / 48) ** 2 + (2 / 60) ** 2), abs=1e-5)
    assert float(s["retention_em_err"]) == pytest.approx(5.6667, abs=1e-4)
    md = (many / "report" / "report.md").read_text(encoding="utf-8")
    assert "| **qwen2.5-7b** | teacher | 7.62B | 0.00 | 0.00 | 60.00 ± 2.00 |" in md
    assert "| 80.00 ± 5.67 |" in md
    assert "Seeds: 0, 1, 2 (3 per configuration; teachers 3)" in md

    # An old run with the teacher evaluated once: the teacher adds no error, and the report still works.
    one = write_run(tmp_path / "one", [teacher(0, 60.0), *students])
    s = row_of(read_rows(write_report(one).summary_csv), "qwen2.5-3b", "finetune")
    assert float(s["retention_em_err"]) == pytest.approx(80 * 3 / 48, abs=1e-6)


# ---------------------------------------------------------------------------------------------------------
# The stored real run and the layers
# ---------------------------------------------------------------------------------------------------------


# Questions right per group in the stored run, from README's table of it (HasAns EM 21.82 = 12/55, NoAns EM
# 51.11 = 23/45 for the teacher; HasAns EM 0 and NoAns EM 95.56 = 43/45, 93.33 = 42/45 for the students).
STORED_GROUPS = {"teacher": (12, 23), "finetune": (0, 43), "distill-srkl+adaptive": (0, 42)}


def stored_run_records(root: Path) -> Path:
    """Result files rebuilt from the stored report of the real SmolLM2 SQuAD v2 run (its metrics.json files were
    not kept): summary.csv's means, the 55/45 answerable/unanswerable split of the same 100 validation questions
    from the untuned model's stored metrics (which also becomes the untuned baseline), and the group EMs of
    STORED_GROUPS. NoAns F1 equals NoAns EM (an unanswerable question scores 0 or 1), so HasAns F1 follows exactly
    from the overall F1: 100 * (F1 - NoAns right) / 55. The abstention rate was not stored."""
    untuned = json.loads((STORED_RUN / "untuned-1shot-384-metrics.json").read_text(encoding="utf-8"))
    has_total, no_total = untuned["HasAns_total"], untuned["NoAns_total"]
    docs = []
    for row in read_rows(STORED_RUN / "summary.csv"):
        has_right, no_right = STORED_GROUPS[row["method"]]
        groups = {
            "HasAns_total": has_total,
            "NoAns_total": no_total,
            "HasAns_exact": 100 * has_right / has_total,
            "HasAns_f1": 100 * (float(row["f1_mean"]) - no_right) / has_total,
            "NoAns_exact": 100 * no_right / no_total,
            "NoAns_f1": 100 * no_right / no_total,
        }
        teacher_params = 134_515_008
        doc = {
            "model": row["model"],
            "role": row["role"],
            "method": row["method"],
            "dataset": row["dataset"],
            "shots": int(row["shots"]),
            "split": row["split"],
            "seed": 0,
            "params": int(row["params"]),
            "teacher": row["teacher"],
            "teacher_params": teacher_params,
            "teacher_nominal_params": nominal_params("smollm2-135m-instruct"),
            "nominal_params": nominal_params("smollm2-135m-instruct") if row["role"] == "teacher" else None,
            "exact": float(row["em_mean"]),
            "f1": float(row["f1_mean"]),
            "rouge_l": float(row["rouge_l_mean"]),
            "total": int(row["n_questions"]),
            **groups,
        }
        docs.append(doc)
    teacher_row = docs[0]
    docs.append(
        untuned
        | {k: teacher_row[k] for k in ("teacher", "teacher_params", "teacher_nominal_params", "nominal_params")}
        | {"model": "smollm2-135m", "role": "untuned", "method": "untuned", "params": 134_515_008}
    )
    return write_run(root, docs)


def test_stored_real_run_flags_collapsed_students_instead_of_claiming_122_percent(tmp_path: Path) -> None:
    assert "122.86" in (STORED_RUN / "report.md").read_text(encoding="utf-8")  # what the old report claimed
    paths = write_report(stored_run_records(tmp_path / "run"))
    md = paths.report_md.read_text(encoding="utf-8")
    assert "122.86" not in md and "120.00" not in md
    rows = read_rows(paths.summary_csv)
    assert all(r["retention_em"] == "" for r in rows)
    below_base = "HasAns F1 0.00 below the untuned model's 6.50"
    assert row_of(rows, "smollm2-135m-L10", "finetune")["flag"] == (
        f"{below_base}; EM 43.00 not above always-abstain 45.00"
    )
    assert row_of(rows, "smollm2-135m-L10", "distill-srkl+adaptive")["flag"] == (
        f"{below_base}; EM 42.00 not above always-abstain 45.00"
    )
    teacher_row = row_of(rows, "smollm2-135m", "teacher")
    assert float(teacher_row["hasans_f1_mean"]) == pytest.approx(27.554, abs=1e-3)  # above the untuned 6.50
    assert teacher_row["flag"] == "EM 35.00 not above always-abstain 45.00"
    assert (
        "- smollm2-135m-L10 / finetune (student of smollm2-135m), squad_v2, one-shot, validation: HasAns F1 0.00 "
        "below the untuned model's 6.50; EM 43.00 not above always-abstain 45.00; its retention is not reported and "
        "it is left out of every retention claim."
    ) in md
    assert "method finetune: no claim: the teacher itself is flagged (EM 35.00 not above always-abstain 45.00)" in md
    assert "| *always abstain* | *baseline* | – | – | – | 45.00 | 45.00 | 45.00 |" in md


@pytest.mark.parametrize(
    ("module", "absent"), [("qadistill.experiments.plan", "qadistill.report"), ("qadistill.report", "typer")]
)
def test_layers(module: str, absent: str) -> None:
    """The plan (experiments) does not import the report, and the report does not import typer (CLI only)."""
    code = f"import sys, {module}\nassert {absent!r} not in sys.modules, 'imported {absent}'\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
