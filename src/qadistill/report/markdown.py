"""`report.md`: setup, what the numbers mean, the study's tables (one per dataset, split and prompt format, with the
trivial baselines), the computed findings and the figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from qadistill.formatting import format_params
from qadistill.report.collapse import COLLAPSE_ABSTENTION
from qadistill.report.collect import ResultRecord
from qadistill.report.findings import CLAIM_RETENTION, Finding, Findings, shots_label
from qadistill.report.stats import CONFIDENCE
from qadistill.report.summary import SummaryRow, sort_key, split_order

FALLBACK_MARK = "†"  # nominal reduction taken from exact counts


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _pm(mean: float | None, std: float | None) -> str:
    return "–" if mean is None else f"{mean:.2f} ± {std or 0.0:.2f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _retention_cell(row: SummaryRow, metric: str) -> str:
    if row.role == "untuned":
        return "baseline"
    if row.flag:
        return "collapsed"
    if row.teacher_flag:
        return "– (teacher flagged)"
    value = getattr(row, f"retention_{metric}")
    if value is None:
        return "–"
    if row.is_teacher:
        return f"{value:.2f}"
    return f"{value:.2f} ± {getattr(row, f'retention_{metric}_err') or 0.0:.2f}"


def _columns(rows: Sequence[SummaryRow]) -> tuple[bool, bool]:
    """Whether the table needs the HasAns/NoAns columns (some question is unanswerable) and the abstention one."""
    groups = any(r.noans_em_mean is not None or (r.always_abstain_em or 0.0) > 0 for r in rows)
    return groups, any(r.abstention_mean is not None for r in rows)


def _table(rows: Sequence[SummaryRow]) -> list[str]:
    """One table of a (dataset, split, prompt format): every model and method, then always-abstain."""
    groups, abstention = _columns(rows)
    header = ["Model", "Method", "Params", "Reduction % exact", "Reduction % nominal", "EM", "F1", "ROUGE-L"]
    if groups:
        header += ["HasAns EM", "HasAns F1", "NoAns EM", "NoAns F1"]
    if abstention:
        header += ["Abstain %"]
    header += ["Retention EM %", "Retention ROUGE-L %", "Seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    lines += [_model_row(row, groups, abstention) for row in sorted(rows, key=sort_key)]
    baseline = next((r for r in rows if r.always_abstain_em is not None), None)
    if baseline is not None:
        lines.append(_abstain_row(baseline, groups, abstention))
    return lines


def _model_row(row: SummaryRow, groups: bool, abstention: bool) -> str:
    name = f"**{_cell(row.model)}**" if row.is_teacher else _cell(row.model)
    method = f"{_cell(row.method)} (baseline)" if row.role == "untuned" else _cell(row.method)
    mark = FALLBACK_MARK if row.is_student and not row.nominal_known else ""
    cells = [name, method, format_params(row.params), f"{row.param_reduction:.2f}"]
    cells.append(f"{row.param_reduction_nominal:.2f}{mark}")
    scores = ["em", "f1", "rouge_l"] + (["hasans_em", "hasans_f1", "noans_em", "noans_f1"] if groups else [])
    scores += ["abstention"] if abstention else []
    cells += [_pm(getattr(row, f"{p}_mean"), getattr(row, f"{p}_std")) for p in scores]
    cells += [_retention_cell(row, "em"), _retention_cell(row, "rouge_l"), str(row.n_seeds)]
    return "| " + " | ".join(cells) + " |"


def _abstain_row(baseline: SummaryRow, groups: bool, abstention: bool) -> str:
    """The always-abstain baseline as a table row with the same columns as `_table`."""
    cells = ["*always abstain*", "*baseline*", "–", "–", "–"]
    cells += [_num(baseline.always_abstain_em), _num(baseline.always_abstain_f1)]
    cells.append(_num(baseline.always_abstain_rouge_l))
    if groups:
        cells += ["–"] * 4  # per group only the overall score is stored
    if abstention:
        cells.append("100.00")
    cells += ["baseline", "baseline", "–"]
    return "| " + " | ".join(cells) + " |"


def _bullets(findings: Sequence[Finding], empty: str) -> list[str]:
    return [f"- {f.text}" for f in findings] or [f"- {empty}"]


def _setup(records: Sequence[ResultRecord], rows: Sequence[SummaryRow], run_dir: Path) -> list[str]:
    seeds = sorted({r.seed for r in records})
    seed_counts = sorted({r.n_seeds for r in rows})
    teacher_counts = sorted({r.n_seeds for r in rows if r.is_teacher})
    lines = [
        f"- Run folder: `{run_dir}`",
        f"- Result files: {len(records)} evaluations in {len(rows)} configurations "
        f"(model × method × dataset × prompt format × split)",
        f"- Seeds: {', '.join(map(str, seeds))} ({'/'.join(map(str, seed_counts))} per configuration"
        + (f"; teachers {'/'.join(map(str, teacher_counts))}" if teacher_counts else "")
        + "); scores are mean ± sample std (ddof=1) over seeds, on a 0–100 scale",
    ]
    for dataset in sorted({r.dataset for r in rows}):
        parts = []
        for split in sorted({r.split for r in rows if r.dataset == dataset}, key=split_order):
            counts = sorted({r.n_questions for r in rows if r.dataset == dataset and r.split == split})
            parts.append(f"{split} {'/'.join(map(str, counts))} questions")
        lines.append(f"- Dataset `{dataset}`: {', '.join(parts)}")
    lines += _models(rows)
    lines.append("- Prompt formats: " + ", ".join(shots_label(s) for s in sorted({r.shots for r in rows})))
    sources = Counter(r.teacher_source for r in records if r.teacher_source)
    if sources:
        names = {"live": "the live teacher", "cache": "the cached top-k teacher logits"}
        used = ", ".join(f"{names.get(k, k)} ({n} evaluations)" for k, n in sorted(sources.items()))
        lines.append(f"- Distilled students learned from: {used}")
    return lines


def _models(rows: Sequence[SummaryRow]) -> list[str]:
    """The setup's teachers, untuned baselines, students and student methods."""
    lines = []
    teachers = sorted({(r.model, r.params) for r in rows if r.is_teacher}, key=lambda t: -t[1])
    untuned = sorted({(r.model, r.params) for r in rows if r.role == "untuned"}, key=lambda t: -t[1])
    students = sorted({(r.model, r.params, r.teacher) for r in rows if r.is_student}, key=lambda t: (t[2], -t[1]))
    methods = sorted({r.method for r in rows if r.is_student})
    if teachers:
        lines.append("- Teachers: " + ", ".join(f"{m} ({format_params(p)})" for m, p in teachers))
    if untuned:
        lines.append("- Untuned baselines (base models, no training): " + ", ".join(m for m, _ in untuned))
    if students:
        lines.append("- Students: " + ", ".join(f"{m} ({format_params(p)}, teacher {t})" for m, p, t in students))
    if methods:
        lines.append("- Student methods: " + ", ".join(methods))
    return lines


def _meaning() -> list[str]:
    return [
        "- EM, F1 and ROUGE-L are mean ± std over seeds (one-shot demonstrations and training order follow the "
        "seed). On SQuAD v2, HasAns scores only the answerable questions and NoAns only the unanswerable ones; "
        'Abstain % is the share of questions the model answered with nothing ("unanswerable").',
        "- *Always abstain* scores what a model that never answers would score on the same questions: the share of "
        "unanswerable questions on SQuAD v2, 0 on MLQA. The untuned rows are each teacher's base model evaluated "
        "without any training. Both are baselines, never students.",
        f"- A model is flagged as collapsed when it abstains on more than {COLLAPSE_ABSTENTION:g}% of the "
        "questions, when its HasAns F1 is below its family's untuned model, or when its EM is not above always "
        "abstaining. Retention of a collapsed model is not reported, and it is left out of every claim; when the "
        "teacher itself is flagged, no retention is reported against it.",
        "- Reduction is 1 − student / teacher parameters, by exact counts and by nominal sizes (the size in the "
        f"model's name, e.g. Qwen2.5 7B → 3B is 57.1% nominal, 59.5% exact); {FALLBACK_MARK} marks a student with "
        "no nominal size (pruned, or not in the registry), whose nominal reduction is its exact one.",
        "- Retention is the student's mean as a percentage of the teacher's mean on the same questions and prompt "
        "format, ± its error propagated to first order (delta method) from the student's and the teacher's seed "
        "stds taken as independent; with one teacher seed the teacher adds no error.",
        f"- The claim tests the paper's statement per teacher, dataset, prompt format, split and method (never the "
        f"best method): the largest reduction at which a student keeps ≥ {CLAIM_RETENTION:g}% of the teacher's EM "
        "and ROUGE-L (means over seeds).",
        f"- Distilled minus fine-tuned is the mean of per-seed differences with a {CONFIDENCE:.0%} t interval over "
        "the seeds both were trained with; with one seed there is no interval.",
    ]


def render_report(
    run_dir: Path,
    records: Sequence[ResultRecord],
    rows: Sequence[SummaryRow],
    findings: Findings,
    plots: Sequence[Path],
    out_dir: Path,
) -> str:
    """The whole report as markdown; plot links are relative to `out_dir` (where report.md is written)."""
    lines = [f"# qadistill report: {run_dir.name or run_dir}", "", "## Setup", "", *_setup(records, rows, run_dir)]
    lines += ["", "## What the numbers mean", "", *_meaning(), "", "## Results", "", "Teachers are in bold."]
    for dataset in sorted({r.dataset for r in rows}):
        for split in sorted({r.split for r in rows if r.dataset == dataset}, key=split_order):
            for shots in sorted({r.shots for r in rows if r.dataset == dataset and r.split == split}):
                lines += ["", f"### {dataset} — {split} — {shots_label(shots)}", ""]
                lines += _table([r for r in rows if (r.dataset, r.split, r.shots) == (dataset, split, shots)])

    lines += _findings(findings)
    if plots:
        lines += ["", "## Figures", ""]
        for plot in plots:
            rel = Path(plot).relative_to(out_dir) if Path(plot).is_relative_to(out_dir) else Path(plot)
            lines += [f"![{plot.stem}]({rel.as_posix()})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _findings(findings: Findings) -> list[str]:
    lines = [
        "",
        "## Findings",
        "",
        "### Collapsed, or no better than a trivial answer (kept out of every retention claim)",
        "",
    ]
    lines += _bullets(findings.collapsed, "No model is flagged as collapsed.")
    lines += ["", "### Trivial baselines on the same questions", ""]
    lines += _bullets(findings.baselines, "No results.")
    lines += ["", f"### The paper's claim: ≥ {CLAIM_RETENTION:g}% of the teacher's EM and ROUGE-L, per method", ""]
    lines += _bullets(findings.retention_claims, "No student results to compare with a teacher.")
    lines += ["", "### One-shot minus zero-shot", ""]
    lines += _bullets(findings.one_shot_gain, "No model has both zero-shot and one-shot results.")
    lines += ["", "### Distilled minus fine-tuned students of the same size (paired by seed)", ""]
    lines += _bullets(
        findings.distill_vs_finetune, "No student has both a fine-tuned and a distilled result in the same setting."
    )
    lines += ["", "### Validation–test gaps larger than the seed std", ""]
    if findings.val_test_pairs_checked == 0:
        lines.append("- Not checked: no configuration has at least two seeds on both validation and test.")
    else:
        lines.append(
            f"- Checked {findings.val_test_pairs_checked} configurations with ≥ 2 seeds on both splits; "
            f"{len(findings.val_test_gaps)} flagged."
        )
        lines += [f"- {f.text}" for f in findings.val_test_gaps]
    return lines
