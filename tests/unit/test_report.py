"""qadistill.report on a synthetic run folder whose means, stds, retentions and gaps are known by construction."""

from __future__ import annotations

import csv
import json
import logging
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qadistill.cli import app
from qadistill.errors import QADistillError
from qadistill.report import (
    CSV_COLUMNS,
    ReportPaths,
    collect_results,
    compute_findings,
    summarize,
    summary_table_text,
    write_report,
)

TEACHER = ("teacher-1b", 1_000_000_000)
STUDENTS = (("student-500m", 500_000_000), ("student-100m", 100_000_000))
METHODS = ("finetune", "distill-srkl")
SEEDS = (1, 2, 3)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_metrics(root: Path, folder: str, **fields) -> Path:
    path = root / folder / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields), encoding="utf-8")
    return path


def result(model, role, method, params, shots, split, seed, em, dataset="squad_v2", teacher=TEACHER, total=200):
    """ROUGE-L is EM + 10 and F1 is EM + 5 everywhere, so one construction gives all three metrics."""
    return {
        "model": model,
        "role": role,
        "method": method,
        "dataset": dataset,
        "shots": shots,
        "split": split,
        "seed": seed,
        "params": params,
        "teacher": teacher[0],
        "teacher_params": teacher[1],
        "exact": em,
        "f1": em + 5,
        "rouge_l": em + 10,
        "total": total,
        "HasAns_exact": em,
    }


def student_em(model: str, method: str, shots: int, split: str) -> float:
    """Mean EM by construction: 500m > 100m, distill-srkl = finetune + 3, one-shot = zero-shot + 5.

    Two deliberate exceptions: student-100m/finetune zero-shot test is 10 below validation (a flagged gap), and
    student-500m/distill-srkl one-shot validation is only 1 above finetune (within the seed std), which also makes
    its validation-test gap exactly equal to the seed std (not flagged).
    """
    em = (50.0 if model == "student-500m" else 40.0) + 5 * shots
    if method == "distill-srkl":
        em += 1 if (model == "student-500m" and shots == 1 and split == "validation") else 3
    if model == "student-100m" and method == "finetune" and shots == 0 and split == "test":
        em -= 10
    return em


def build_run(root: Path) -> Path:
    """Teacher and two students x two methods x two prompt formats x two splits x three seeds."""
    for shots in (0, 1):
        for split in ("validation", "test"):
            for i, seed in enumerate(SEEDS):
                offset = i - 1  # seeds at mean - d, mean, mean + d: sample std d
                write_metrics(
                    root,
                    f"teacher/{shots}shot/{split}/seed{seed}",
                    **result(
                        *TEACHER[:1], "teacher", "teacher", TEACHER[1], shots, split, seed, 60 + 10 * shots + offset
                    ),
                )
                for model, params in STUDENTS:
                    for method in METHODS:
                        em = student_em(model, method, shots, split) + 2 * offset
                        write_metrics(
                            root,
                            f"{model}/{method}/{shots}shot/{split}/seed{seed}",
                            **result(model, "student", method, params, shots, split, seed, em),
                        )
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def find_row(rows, model, method, shots, split, dataset="squad_v2"):
    matches = [
        r
        for r in rows
        if r["model"] == model
        and r["method"] == method
        and r["shots"] == str(shots)
        and r["split"] == split
        and r["dataset"] == dataset
    ]
    assert len(matches) == 1, matches
    return matches[0]


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return build_run(tmp_path / "run")


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> tuple[Path, ReportPaths]:
    """One run folder and report for the read-only tests (plotting is the slow part)."""
    root = build_run(tmp_path_factory.mktemp("shared") / "run")
    return root, write_report(root)


@pytest.fixture()
def report(shared_run) -> ReportPaths:
    return shared_run[1]


# ---------------------------------------------------------------------------------------------------------
# summary.csv
# ---------------------------------------------------------------------------------------------------------


def test_summary_csv_columns_and_row_count(report: ReportPaths, shared_run):
    assert report.summary_csv == shared_run[0] / "report" / "summary.csv"
    rows = read_csv(report.summary_csv)
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert CSV_COLUMNS == (
        "model",
        "role",
        "method",
        "dataset",
        "shots",
        "split",
        "teacher",
        "n_seeds",
        "em_mean",
        "em_std",
        "f1_mean",
        "f1_std",
        "rouge_l_mean",
        "rouge_l_std",
        "hasans_em_mean",
        "hasans_em_std",
        "hasans_f1_mean",
        "hasans_f1_std",
        "noans_em_mean",
        "noans_em_std",
        "noans_f1_mean",
        "noans_f1_std",
        "abstention_mean",
        "abstention_std",
        "always_abstain_em",
        "always_abstain_f1",
        "always_abstain_rouge_l",
        "params",
        "param_reduction",
        "nominal_params",
        "param_reduction_nominal",
        "retention_em",
        "retention_em_err",
        "retention_rouge_l",
        "retention_rouge_l_err",
        "flag",
        "n_questions",
    )
    # (1 teacher + 2 students x 2 methods) x 2 shots x 2 splits
    assert len(rows) == 5 * 2 * 2
    assert {r["n_seeds"] for r in rows} == {"3"}
    assert {r["n_questions"] for r in rows} == {"200"}


def test_summary_teacher_row(report: ReportPaths):
    row = find_row(read_csv(report.summary_csv), "teacher-1b", "teacher", 1, "test")
    assert row["role"] == "teacher"
    assert row["teacher"] == "teacher-1b"
    assert float(row["em_mean"]) == pytest.approx(70.0)
    assert float(row["em_std"]) == pytest.approx(1.0)
    assert float(row["f1_mean"]) == pytest.approx(75.0)
    assert float(row["rouge_l_mean"]) == pytest.approx(80.0)
    assert float(row["param_reduction"]) == 0.0
    assert float(row["retention_em"]) == pytest.approx(100.0)
    assert int(row["params"]) == 1_000_000_000


def test_summary_student_means_stds_reduction_retention(report: ReportPaths):
    rows = read_csv(report.summary_csv)
    row = find_row(rows, "student-500m", "finetune", 0, "validation")
    assert float(row["em_mean"]) == pytest.approx(50.0)
    assert float(row["em_std"]) == pytest.approx(2.0)  # sample std (ddof=1) of 48, 50, 52
    assert float(row["f1_mean"]) == pytest.approx(55.0)
    assert float(row["f1_std"]) == pytest.approx(2.0)
    assert float(row["rouge_l_mean"]) == pytest.approx(60.0)
    assert float(row["rouge_l_std"]) == pytest.approx(2.0)
    assert float(row["param_reduction"]) == pytest.approx(50.0)
    assert float(row["retention_em"]) == pytest.approx(100 * 50 / 60, abs=1e-6)
    assert float(row["retention_rouge_l"]) == pytest.approx(100 * 60 / 70, abs=1e-6)
    assert row["teacher"] == "teacher-1b"

    row = find_row(rows, "student-100m", "distill-srkl", 1, "test")
    assert float(row["em_mean"]) == pytest.approx(48.0)
    assert float(row["param_reduction"]) == pytest.approx(90.0)
    assert float(row["retention_em"]) == pytest.approx(100 * 48 / 70, abs=1e-6)
    assert float(row["retention_rouge_l"]) == pytest.approx(100 * 58 / 80, abs=1e-6)

    row = find_row(rows, "student-100m", "finetune", 0, "test")
    assert float(row["em_mean"]) == pytest.approx(30.0)
    assert float(row["retention_em"]) == pytest.approx(50.0)


def test_summary_sort_order(report: ReportPaths):
    rows = read_csv(report.summary_csv)
    head = [(r["model"], r["method"], r["shots"], r["split"]) for r in rows[:6]]
    assert head == [
        ("teacher-1b", "teacher", "0", "validation"),
        ("student-500m", "finetune", "0", "validation"),
        ("student-500m", "distill-srkl", "0", "validation"),
        ("student-100m", "finetune", "0", "validation"),
        ("student-100m", "distill-srkl", "0", "validation"),
        ("teacher-1b", "teacher", "0", "test"),
    ]
    assert [(r["shots"], r["split"]) for r in rows[::5]] == [
        ("0", "validation"),
        ("0", "test"),
        ("1", "validation"),
        ("1", "test"),
    ]


def test_single_seed_and_missing_teacher(tmp_path: Path):
    root = tmp_path / "run"
    write_metrics(
        root, "a", **result("s-50m", "student", "finetune", 50_000_000, 0, "test", 7, 12.5, dataset="demo-en")
    )
    rows = read_csv(write_report(root).summary_csv)
    assert len(rows) == 1
    row = rows[0]
    assert row["n_seeds"] == "1"
    assert float(row["em_std"]) == 0.0
    assert float(row["param_reduction"]) == pytest.approx(95.0)
    assert row["retention_em"] == "" and row["retention_rouge_l"] == ""
    md = (root / "report" / "report.md").read_text(encoding="utf-8")
    assert "demo-en, zero-shot, test, teacher teacher-1b, method finetune: no claim: no teacher result" in md


def test_teacher_with_zero_score_gives_empty_retention(tmp_path: Path):
    root = tmp_path / "run"
    write_metrics(root, "t", **result(*TEACHER[:1], "teacher", "teacher", TEACHER[1], 0, "test", 0, 0.0))
    write_metrics(root, "s", **result("s", "student", "finetune", 100_000_000, 0, "test", 0, 0.0))
    rows = read_csv(write_report(root).summary_csv)
    student = find_row(rows, "s", "finetune", 0, "test")
    assert student["retention_em"] == ""
    assert float(student["retention_rouge_l"]) == pytest.approx(100.0)  # ROUGE-L is EM + 10 = 10 for both


# ---------------------------------------------------------------------------------------------------------
# report.md and findings
# ---------------------------------------------------------------------------------------------------------


def test_report_md_setup_and_tables(report: ReportPaths):
    md = report.report_md.read_text(encoding="utf-8")
    assert md.startswith("# qadistill report: run")
    assert "Seeds: 1, 2, 3" in md
    assert "Dataset `squad_v2`: validation 200 questions, test 200 questions" in md
    assert "### squad_v2 — validation — zero-shot" in md and "### squad_v2 — test — one-shot" in md
    assert "| Model | Method | Params | Reduction % exact | Reduction % nominal | EM | F1 | ROUGE-L |" in md
    # student-100m / finetune on test, zero-shot: EM 30 ± 2 (F1 +5, ROUGE-L +10); retention 30/60 and 40/70 with
    # the propagated error 50 * sqrt((2/30)^2 + (1/60)^2) = 3.44 and 57.14 * sqrt((2/40)^2 + (1/70)^2) = 2.97.
    test_0shot = md.split("### squad_v2 — test — zero-shot")[1].split("###")[0]
    line = next(ln for ln in test_0shot.splitlines() if ln.startswith("| student-100m | finetune |"))
    assert line == (
        "| student-100m | finetune | 100M | 90.00 | 90.00† | 30.00 ± 2.00 | 35.00 ± 2.00 | 40.00 ± 2.00 "
        "| 50.00 ± 3.44 | 57.14 ± 2.97 | 3 |"
    )
    assert "| **teacher-1b** | teacher | 1B | 0.00 | 0.00 | 60.00 ± 1.00 | 65.00 ± 1.00 | 70.00 ± 1.00 | 100.00 |" in md


def test_report_md_claim_per_method(report: ReportPaths):
    md = report.report_md.read_text(encoding="utf-8")
    # Best by construction: student-500m / distill-srkl one-shot test, 58 vs 70 (82.9%) and 68 vs 80 (85.0%).
    assert (
        "squad_v2, one-shot, test, teacher teacher-1b, method distill-srkl: no student keeps ≥ 90% of both; the "
        "closest, student-500m at 50.0% fewer parameters, keeps EM 82.9 ± 3.1%, ROUGE-L 85.0 ± 2.7%."
    ) in md
    assert "squad_v2, one-shot, test, teacher teacher-1b, method finetune: no student keeps" in md


def test_report_md_finding_b_one_shot_minus_zero_shot(report: ReportPaths):
    md = report.report_md.read_text(encoding="utf-8")
    assert (
        "student-100m / finetune, squad_v2 test: one-shot minus zero-shot EM +15.00 (30.00 → 45.00), "
        "ROUGE-L +15.00 (40.00 → 55.00)."
    ) in md
    assert "teacher-1b / teacher, squad_v2 validation: one-shot minus zero-shot EM +10.00 (60.00 → 70.00)" in md


def test_report_md_finding_c_distilled_minus_finetuned(report: ReportPaths):
    md = report.report_md.read_text(encoding="utf-8")
    # Both methods move by the same 2 points per seed, so the per-seed differences are constant: a zero-width interval.
    assert (
        "student-100m, squad_v2 zero-shot test: distill-srkl minus finetune EM +13.00 (95% CI [+13.00, +13.00] over 3 "
        "paired seeds, excludes 0), F1 +13.00"
    ) in md
    assert (
        "student-500m, squad_v2 one-shot validation: distill-srkl minus finetune EM +1.00 (95% CI [+1.00, +1.00] "
        "over 3 paired seeds, excludes 0)"
    ) in md


def test_report_md_finding_d_val_test_gaps(report: ReportPaths):
    md = report.report_md.read_text(encoding="utf-8")
    assert "Checked 10 configurations with ≥ 2 seeds on both splits; 1 flagged." in md
    assert (
        "student-100m / finetune, squad_v2 zero-shot: EM validation 40.00 ± 2.00 vs test 30.00 ± 2.00 "
        "(gap +10.00 exceeds the larger seed std 2.00)"
    ) in md
    # A gap exactly equal to the seed std (student-500m / distill-srkl one-shot: 56 vs 58, std 2) is not flagged.
    assert "student-500m / distill-srkl, squad_v2 one-shot:" not in md


def test_findings_data(shared_run):
    findings = compute_findings(summarize(collect_results(shared_run[0])))
    gaps = findings.val_test_gaps
    assert len(gaps) == 1
    assert gaps[0].data["em_gap"] == pytest.approx(10.0)
    assert gaps[0].data["em_limit"] == pytest.approx(2.0)
    assert findings.val_test_pairs_checked == 10
    assert len(findings.one_shot_gain) == 5 * 2  # 5 (model, method) x 2 splits
    assert len(findings.distill_vs_finetune) == 2 * 2 * 2  # 2 students x 2 shots x 2 splits
    # One claim per teacher x dataset x shots x split x method (2 x 2 x 2), never merged over methods.
    assert len(findings.retention_claims) == 8
    assert sorted({f.data["method"] for f in findings.retention_claims}) == ["distill-srkl", "finetune"]
    assert not any(f.data["claimed"] for f in findings.retention_claims)
    assert findings.collapsed == []


def test_val_test_gap_needs_two_seeds(tmp_path: Path):
    root = tmp_path / "run"
    write_metrics(root, "v", **result("s", "student", "finetune", 10, 0, "validation", 0, 80.0))
    write_metrics(root, "t", **result("s", "student", "finetune", 10, 0, "test", 0, 20.0))
    md = write_report(root).report_md.read_text(encoding="utf-8")
    assert "Not checked: no configuration has at least two seeds on both validation and test." in md


def test_report_md_embeds_plots_with_relative_links(report: ReportPaths):
    md = report.report_md.read_text(encoding="utf-8")
    assert "![scores_squad_v2](scores_squad_v2.png)" in md
    assert "![retention_vs_reduction](retention_vs_reduction.png)" in md


# ---------------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plots_are_valid_pngs(report: ReportPaths, shared_run):
    out = shared_run[0] / "report"
    assert [p.name for p in report.plots] == ["scores_squad_v2.png", "retention_vs_reduction.png"]
    for plot in report.plots:
        assert plot.parent == out
        assert plot.stat().st_size > 20_000
        width, height = png_size(plot)
        assert width >= 800 and height >= 500
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_plot_file_names_are_safe(tmp_path: Path):
    root = tmp_path / "run"
    write_metrics(root, "a", **result("s", "student", "finetune", 10, 0, "test", 0, 5.0, dataset="mlqa de/x"))
    paths = write_report(root, tmp_path / "out")
    assert [p.name for p in paths.plots] == ["scores_mlqa_de_x.png"]  # no teacher: no retention plot
    assert paths.report_md.parent == tmp_path / "out"


# ---------------------------------------------------------------------------------------------------------
# Robustness: skipped files, duplicates, empty folders
# ---------------------------------------------------------------------------------------------------------


def test_malformed_and_irrelevant_files_are_skipped_with_warning(run_dir: Path, caplog):
    (run_dir / "half").mkdir()
    (run_dir / "half" / "metrics.json").write_text('{"model": "x", "exact": 1', encoding="utf-8")
    write_metrics(run_dir, "plain-evaluate", exact=12.0, f1=20.0, total=10, rouge_l=15.0, shots=0, seed=0)
    (run_dir / "list").mkdir()
    (run_dir / "list" / "metrics.json").write_text("[1, 2]", encoding="utf-8")
    bad_role = result("x", "boss", "finetune", 10, 0, "test", 0, 1.0)
    write_metrics(run_dir, "bad-role", **bad_role)
    with caplog.at_level(logging.WARNING, logger="qadistill.report"):
        paths = write_report(run_dir)
    messages = [r.getMessage() for r in caplog.records if r.name == "qadistill.report"]
    skipped = [m for m in messages if m.startswith("skipped 4 of 64 metrics.json files")]
    assert len(skipped) == 1, messages
    assert "half/metrics.json (unreadable JSON" in skipped[0]
    assert "plain-evaluate/metrics.json (missing keys: model, role, method" in skipped[0]
    assert "list/metrics.json (not a JSON object)" in skipped[0]
    assert "bad-role/metrics.json ('role' must be one of teacher, student, untuned" in skipped[0]
    assert len(read_csv(paths.summary_csv)) == 20


def test_duplicate_seed_is_counted_once(run_dir: Path, caplog):
    write_metrics(run_dir, "rerun/seed1", **result(*TEACHER[:1], "teacher", "teacher", TEACHER[1], 0, "test", 1, 59.0))
    with caplog.at_level(logging.WARNING, logger="qadistill.report"):
        rows = read_csv(write_report(run_dir).summary_csv)
    assert any("duplicate result for teacher-1b" in r.getMessage() for r in caplog.records)
    row = find_row(rows, "teacher-1b", "teacher", 0, "test")
    assert row["n_seeds"] == "3"


def test_empty_folder_raises(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(QADistillError, match=r"no evaluation results \(metrics.json with model/method/dataset"):
        write_report(tmp_path / "empty")


def test_folder_with_only_unusable_files_raises(tmp_path: Path, caplog):
    write_metrics(tmp_path / "run", "x", exact=1.0, f1=1.0, total=3)
    with caplog.at_level(logging.WARNING, logger="qadistill.report"):
        with pytest.raises(QADistillError, match="no evaluation results"):
            write_report(tmp_path / "run")
    assert any("skipped 1 of 1" in r.getMessage() for r in caplog.records)


def test_missing_folder_raises(tmp_path: Path):
    with pytest.raises(QADistillError, match="does not exist"):
        write_report(tmp_path / "nope")


def test_report_is_reproducible(run_dir: Path):
    first = write_report(run_dir)
    csv_text = first.summary_csv.read_text(encoding="utf-8")
    md_text = first.report_md.read_text(encoding="utf-8")
    second = write_report(run_dir)  # the report folder below run_dir must not feed back into the results
    assert second.summary_csv.read_text(encoding="utf-8") == csv_text
    assert second.report_md.read_text(encoding="utf-8") == md_text


# ---------------------------------------------------------------------------------------------------------
# Terminal table and command
# ---------------------------------------------------------------------------------------------------------


def test_summary_table_text(run_dir: Path):
    rows = summarize(collect_results(run_dir))
    text = summary_table_text(rows)
    lines = text.splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[0].split()[:5] == ["dataset", "shots", "split", "model", "method"]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned
    assert any("student-100m" in ln and "30.00 ± 2.00" in ln and "50.0" in ln for ln in lines)
    # The same table from summary.csv rows (what the CLI prints after a run).
    csv_rows = read_csv(write_report(run_dir).summary_csv)
    assert summary_table_text(csv_rows) == text


def test_report_command(run_dir: Path, tmp_path: Path):
    out = tmp_path / "custom-out"
    result_ = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result_.exit_code == 0, result_.output
    assert "teacher-1b" in result_.output
    assert f"summary: {out / 'summary.csv'}" in result_.output
    assert (out / "report.md").is_file()
    assert (out / "scores_squad_v2.png").is_file()


def test_report_says_which_teacher_signal_distilled_students_used(tmp_path):
    import json

    from qadistill.report import write_report

    base = {
        "dataset": "squad_v2",
        "shots": 0,
        "split": "test",
        "seed": 0,
        "teacher": "t",
        "teacher_params": 100,
        "exact": 50.0,
        "f1": 50.0,
        "rouge_l": 50.0,
        "total": 10,
    }
    runs = {
        "t": {"model": "t", "role": "teacher", "method": "teacher", "params": 100},
        "s1": {"model": "s", "role": "student", "method": "distill-srkl", "params": 50, "teacher_source": "cache"},
        "s2": {
            "model": "s",
            "role": "student",
            "method": "distill-srkl+adaptive",
            "params": 50,
            "teacher_source": "live",
        },
    }
    for name, extra in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(base | extra), encoding="utf-8")
    text = write_report(tmp_path).report_md.read_text(encoding="utf-8")
    assert "cached top-k teacher logits (1 evaluations)" in text
    assert "the live teacher (1 evaluations)" in text
