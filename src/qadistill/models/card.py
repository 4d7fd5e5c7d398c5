"""Model cards: a README.md in every model folder we write, with the Hub's YAML metadata and how the model was made.

The metadata (base_model, datasets, library_name, tags, and `model-index` results once evaluated) is written with
huggingface_hub's `ModelCard` / `ModelCardData`, so the Hub and `ModelCard.load` read it. The facts behind the
body are kept in the metadata too (`qadistill:`), so an evaluation that finishes later can add its results and
the body is rendered again from the same facts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from qadistill.io import atomic_write_text

CARD_FILE = "README.md"
HUB_DATASETS = {"squad_v2": "rajpurkar/squad_v2", "mlqa-en": "facebook/mlqa", "mlqa-de": "facebook/mlqa"}
METRICS = (("exact", "exact_match", "EM"), ("f1", "f1", "F1"), ("rouge_l", "rouge", "ROUGE-L"))
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_id(spec: str | None) -> str | None:
    """`spec` as a Hub model id where it is one (`org/name`, or a registry name), else None (a local folder)."""
    if not spec:
        return None
    from qadistill.models.families import get_model_info

    info = get_model_info(spec)
    if info is not None:  # the registry names base models; an -Instruct spec means the instruct variant
        instruct = spec.lower().endswith("-instruct") and not info.hub_id.lower().endswith("-instruct")
        return f"{info.hub_id}-Instruct" if instruct else info.hub_id
    return spec if _HUB_ID.match(spec) and not Path(spec).expanduser().exists() else None


def build_card(facts: Mapping[str, Any]) -> ModelCard:
    """A card from the facts of one model (see `training_facts`, `pruning_facts`; `results` from evaluations)."""
    datasets = [HUB_DATASETS[d] for d in facts.get("datasets", []) if d in HUB_DATASETS]
    results = facts.get("results", [])
    eval_results = [
        EvalResult(
            task_type="question-answering",
            task_name="Extractive question answering",
            dataset_type=HUB_DATASETS.get(r["dataset"], r["dataset"]),
            dataset_name=r["dataset"],
            dataset_split=r["split"],
            dataset_args={"shots": r["shots"]},
            metric_type=metric_type,
            metric_name=label,
            metric_value=round(float(r["metrics"][key]), 4),
        )
        for r in results
        for key, metric_type, label in METRICS
        if key in r["metrics"]
    ]
    data = ModelCardData(
        model_name=facts["name"],
        base_model=hub_id(facts.get("base_model")),
        datasets=sorted(set(datasets)) or None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["qadistill", "extractive-qa", *facts.get("tags", [])],
        metrics=[m for _, m, _ in METRICS] if results else None,
        eval_results=eval_results or None,
        qadistill=dict(facts),
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{render_body(facts)}")


def write_card(folder: Path, facts: Mapping[str, Any]) -> Path:
    """Write (or replace) `folder/README.md` atomically."""
    path = Path(folder) / CARD_FILE
    atomic_write_text(path, str(build_card(facts)))
    return path


def read_facts(folder: Path) -> dict[str, Any] | None:
    """The facts of a card we wrote, or None (no card, or someone else's)."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return None
    facts = ModelCard.load(path).data.to_dict().get("qadistill")
    return dict(facts) if isinstance(facts, dict) else None


def add_evaluation(folder: Path, result: Mapping[str, Any]) -> bool:
    """Add (or replace, for the same dataset, split and shots) one evaluation's metrics on a card we wrote.
    `result`: dataset, split, shots, seed, metrics (0-100) and the command that reproduces it. False: no card."""
    facts = read_facts(folder)
    if facts is None:
        return False
    same = (result["dataset"], result["split"], result["shots"])
    kept = [r for r in facts.get("results", []) if (r["dataset"], r["split"], r["shots"]) != same]
    facts["results"] = [*kept, dict(result)]
    write_card(folder, facts)
    return True


# ----------------------------------------------------------------------------------------------------- facts


def training_facts(job: Mapping[str, Any], result: Mapping[str, Any], split_sizes: Mapping[str, int]) -> dict:
    """What a card says about a model that `qadistill finetune` / `distill` wrote (from job.json and the result)."""
    distilled = "teacher" in job
    params = result.get("student_params") or result.get("params")
    reference = result.get("teacher_params") if distilled else job.get("reference_params")
    facts: dict[str, Any] = {
        "name": Path(str(job["out_dir"])).name or "model",
        "method": "distillation" if distilled else "supervised fine-tuning",
        "base_model": job.get("student") if distilled else job.get("model"),
        "teacher": job.get("teacher"),
        "datasets": [job["data"]["dataset"]],
        "splits": dict(split_sizes),
        "split_seed": job["data"]["splits"]["seed"],
        "prompt": job["prompt"],
        "hyperparameters": {k: v for k, v in job["train"].items() if k not in _NOT_HYPERPARAMETERS},
        "seed": job["seed"],
        "params": params,
        "reference_params": reference,
        "steps": result.get("steps"),
        "final_val_ce": result.get("final_val_ce"),
        "tags": ["knowledge-distillation" if distilled else "fine-tuned"],
        "results": [],
    }
    if distilled:
        distill = job["distill"]
        facts["distillation"] = {
            "divergence": distill["divergence"],
            "kd_ratio": distill["kd_ratio"],
            "temperature": distill["temperature"],
            "adaptive_off_policy": distill["off_policy"]["enabled"],
            "teacher_source": result.get("teacher_source"),
        }
    return facts


_NOT_HYPERPARAMETERS = {"checkpoint_interval", "eval_batch_size", "nan_policy"}


def pruning_facts(source: str, keep: list[int], source_layers: int, params: int, source_params: int) -> dict:
    """What a card says about a student initialised by keeping some of a teacher's layers."""
    return {
        "name": "pruned-init",
        "method": "layer pruning (initialisation of a student)",
        "base_model": source,
        "teacher": source,
        "kept_layers": list(keep),
        "source_layers": source_layers,
        "params": params,
        "reference_params": source_params,
        "tags": ["pruned"],
        "results": [],
    }


# ------------------------------------------------------------------------------------------------------ body


def render_body(facts: Mapping[str, Any]) -> str:
    """The card's Markdown body from its facts."""
    lines = [f"# {facts['name']}", "", f"Made with qadistill by {facts['method']}.", ""]
    lines += ["## How it was made", ""]
    for label, value in (
        ("Method", facts["method"]),
        ("Teacher", facts.get("teacher")),
        ("Initialised from", facts.get("base_model")),
        ("Kept layers", _kept(facts)),
        ("Divergence", _divergence(facts.get("distillation"))),
        ("Data", _data(facts)),
        ("Prompt format", _prompt(facts.get("prompt"))),
        ("Seed", facts.get("seed")),
        ("Steps", facts.get("steps")),
        ("Final validation CE", _number(facts.get("final_val_ce"))),
    ):
        if value is not None:
            lines.append(f"- **{label}:** {value}")
    if facts.get("hyperparameters"):
        lines += ["", "| hyperparameter | value |", "|---|---|"]
        lines += [f"| {k} | {_value(v)} |" for k, v in facts["hyperparameters"].items()]
    lines += ["", "## Size", "", f"- **Parameters:** {_params(facts)}", ""]
    lines += _results(facts.get("results", []))
    lines += [
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        "```",
        "",
        "Prompts must be built the way qadistill builds them (`qadistill.prompts`); `qadistill export-lm-eval` "
        "writes them for lm-evaluation-harness.",
        "",
    ]
    return "\n".join(lines)


def _kept(facts: Mapping[str, Any]) -> str | None:
    if "kept_layers" not in facts:
        return None
    return f"{len(facts['kept_layers'])} of {facts['source_layers']} ({', '.join(map(str, facts['kept_layers']))})"


def _divergence(distill: Mapping[str, Any] | None) -> str | None:
    if not distill:
        return None
    off_policy = "adaptive off-policy student outputs" if distill["adaptive_off_policy"] else "ground truth only"
    source = f", teacher {distill['teacher_source']}" if distill.get("teacher_source") else ""
    return f"{distill['divergence']} (kd_ratio {distill['kd_ratio']}, T={distill['temperature']}, {off_policy}{source})"


def _data(facts: Mapping[str, Any]) -> str | None:
    if not facts.get("splits"):
        return None
    sizes = ", ".join(f"{name} {count:,}" for name, count in facts["splits"].items())
    return f"{', '.join(facts['datasets'])}, split by article with seed {facts['split_seed']} ({sizes} questions)"


def _prompt(prompt: Mapping[str, Any] | None) -> str | None:
    if not prompt:
        return None
    return f"{prompt['shots']}-shot, style {prompt['style']}, at most {prompt['max_prompt_tokens']} prompt tokens"


def _params(facts: Mapping[str, Any]) -> str:
    params, reference = facts.get("params"), facts.get("reference_params")
    if not params:
        return "unknown"
    if not reference or reference == params:
        return f"{params:,}"
    return f"{params:,} ({reference:,} in the teacher: {100 * (1 - params / reference):.1f}% fewer)"


def _results(results: list[Mapping[str, Any]]) -> list[str]:
    if not results:
        return ["## Evaluation", "", "Not evaluated yet.", ""]
    lines = [
        "## Evaluation",
        "",
        "| dataset | split | shots | EM | F1 | ROUGE-L | questions |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["metrics"]
        lines.append(
            f"| {r['dataset']} | {r['split']} | {r['shots']} | {m['exact']:.2f} | {m['f1']:.2f} | "
            f"{m.get('rouge_l', float('nan')):.2f} | {m.get('total', '')} |"
        )
    lines += ["", "Reproduce:", ""]
    lines += [f"- {r['split']}: `{r['command']}`" for r in results if r.get("command")]
    return [*lines, ""]


def _number(value: Any) -> str | None:
    return None if value is None else f"{value:.4f}"


def _value(value: Any) -> str:
    return str(value).replace("|", "\\|")
