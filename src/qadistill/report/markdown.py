"""`report.md`: setup, the study's tables (mean ± std per prompt format), computed findings and the figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from qadistill.report.collect import ResultRecord
from qadistill.report.findings import Finding, Findings, shots_label
from qadistill.report.summary import SummaryRow, format_params, sort_key, split_order


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _table(rows: Sequence[SummaryRow]) -> list[str]:
    """Rows: model / method; columns: EM and ROUGE-L per prompt format, params, reduction, retention."""
    shots = sorted({r.shots for r in rows})
    header = ["Model", "Method", "Params", "Reduction %"]
    for s in shots:
        header += [f"EM {shots_label(s)}", f"ROUGE-L {shots_label(s)}"]
    ret_label = "/".join(shots_label(s).replace("-shot", "") for s in shots)
    header += [f"Retention EM % ({ret_label})", f"Retention ROUGE-L % ({ret_label})", "Seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    entries: dict[tuple[str, str], dict[int, SummaryRow]] = {}
    for row in sorted(rows, key=lambda r: sort_key(r)[3:]):
        entries.setdefault((row.model, row.method), {})[row.shots] = row
    for (model, method), by_shots in entries.items():
        any_row = next(iter(by_shots.values()))
        cells = [
            f"**{_cell(model)}**" if any_row.is_teacher else _cell(model),
            _cell(method),
            format_params(any_row.params),
            f"{any_row.param_reduction:.2f}",
        ]
        for s in shots:
            row = by_shots.get(s)
            cells += [_pm(row.em_mean, row.em_std), _pm(row.rouge_l_mean, row.rouge_l_std)] if row else ["–", "–"]
        cells.append(" / ".join(_pct(by_shots[s].retention_em) if s in by_shots else "–" for s in shots))
        cells.append(" / ".join(_pct(by_shots[s].retention_rouge_l) if s in by_shots else "–" for s in shots))
        cells.append(" / ".join(str(by_shots[s].n_seeds) if s in by_shots else "–" for s in shots))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _bullets(findings: Sequence[Finding], empty: str) -> list[str]:
    return [f"- {f.text}" for f in findings] or [f"- {empty}"]


def _setup(records: Sequence[ResultRecord], rows: Sequence[SummaryRow], run_dir: Path) -> list[str]:
    seeds = sorted({r.seed for r in records})
    seed_counts = sorted({r.n_seeds for r in rows})
    lines = [
        f"- Run folder: `{run_dir}`",
        f"- Result files: {len(records)} evaluations in {len(rows)} configurations "
        f"(model × method × dataset × prompt format × split)",
        f"- Seeds: {', '.join(map(str, seeds))} ({'/'.join(map(str, seed_counts))} per configuration); "
        "scores are mean ± sample std (ddof=1) over seeds, on a 0–100 scale",
    ]
    datasets = sorted({r.dataset for r in rows})
    for dataset in datasets:
        parts = []
        for split in sorted({r.split for r in rows if r.dataset == dataset}, key=split_order):
            counts = sorted({r.n_questions for r in rows if r.dataset == dataset and r.split == split})
            parts.append(f"{split} {'/'.join(map(str, counts))} questions")
        lines.append(f"- Dataset `{dataset}`: {', '.join(parts)}")
    teachers = sorted({(r.model, r.params) for r in rows if r.is_teacher}, key=lambda t: -t[1])
    students = sorted({(r.model, r.params, r.teacher) for r in rows if not r.is_teacher}, key=lambda t: (t[2], -t[1]))
    methods = sorted({r.method for r in rows if not r.is_teacher})
    if teachers:
        lines.append("- Teachers: " + ", ".join(f"{m} ({format_params(p)})" for m, p in teachers))
    if students:
        lines.append("- Students: " + ", ".join(f"{m} ({format_params(p)}, teacher {t})" for m, p, t in students))
    if methods:
        lines.append("- Student methods: " + ", ".join(methods))
    shots = sorted({r.shots for r in rows})
    lines.append("- Prompt formats: " + ", ".join(shots_label(s) for s in shots))
    sources = Counter(r.teacher_source for r in records if r.teacher_source)
    if sources:
        names = {"live": "the live teacher", "cache": "the cached top-k teacher logits"}
        used = ", ".join(f"{names.get(k, k)} ({n} evaluations)" for k, n in sorted(sources.items()))
        lines.append(f"- Distilled students learned from: {used}")
    return lines


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
    lines += [
        "",
        "## Results",
        "",
        "EM and ROUGE-L are mean ± std over seeds. Reduction is the parameter reduction relative to the student's "
        "teacher; retention is the student's mean as a percentage of the teacher's mean on the same dataset, "
        "prompt format and split. Teachers are in bold.",
    ]
    for dataset in sorted({r.dataset for r in rows}):
        for split in sorted({r.split for r in rows if r.dataset == dataset}, key=split_order):
            lines += ["", f"### {dataset} — {split}", ""]
            lines += _table([r for r in rows if r.dataset == dataset and r.split == split])

    lines += ["", "## Findings", "", "### (a) Best retention at the largest parameter reduction", ""]
    lines += _bullets(findings.retention_at_max_reduction, "No student results to compare with a teacher.")
    lines += ["", "### (b) One-shot minus zero-shot", ""]
    lines += _bullets(findings.one_shot_gain, "No model has both zero-shot and one-shot results.")
    lines += ["", "### (c) Distilled minus fine-tuned students of the same size", ""]
    lines += _bullets(
        findings.distill_vs_finetune, "No student has both a fine-tuned and a distilled result in the same setting."
    )
    lines += ["", "### (d) Validation–test gaps larger than the seed std", ""]
    if findings.val_test_pairs_checked == 0:
        lines.append("- Not checked: no configuration has at least two seeds on both validation and test.")
    else:
        lines.append(
            f"- Checked {findings.val_test_pairs_checked} configurations with ≥ 2 seeds on both splits; "
            f"{len(findings.val_test_gaps)} flagged."
        )
        lines += [f"- {f.text}" for f in findings.val_test_gaps]

    if plots:
        lines += ["", "## Figures", ""]
        for plot in plots:
            rel = Path(plot).relative_to(out_dir) if Path(plot).is_relative_to(out_dir) else Path(plot)
            lines += [f"![{plot.stem}]({rel.as_posix()})", ""]
    return "\n".join(lines).rstrip() + "\n"
