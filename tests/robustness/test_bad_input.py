"""Bad input gives one clear `error:` line and exit status 2: never a traceback, never a silently wrong result.

Data files (malformed, empty, non-UTF-8, wrong schema, wrong answer offsets, duplicate ids), configs (unknown keys,
out-of-range values), model folders (no weights, mismatched tokenizers), prompts longer than the model's context,
splits that end up empty and unusable output folders, each through the real CLI. Most cases run `cli.main()` in
this process; the ones whose stderr must be checked as a user sees it run the console script.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from robustness_support import (
    EVALUATE_ARGS,
    FINETUNE_ARGS,
    assert_one_line_error,
    qadistill,
)

from qadistill.config import GenerationConfig
from qadistill.data.examples import QAExample
from qadistill.errors import QADistillError
from qadistill.evaluate import predict
from qadistill.prompts import PromptFormat, build_prompt, fit_to_context
from qadistill.tokenize import prompt_ids

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
NO_MODEL = "/nonexistent/model"  # data problems must be reported before any model is loaded


def squad_doc(articles: int = 6, *, bad_offsets: tuple[str, ...] = (), id_prefix: str = "q") -> dict:
    """A valid SQuAD v2 document; question ids in `bad_offsets` get an answer_start that misses their text."""
    data = []
    for a in range(articles):
        town = WORDS[(a + 3) % len(WORDS)]
        context = f"The {WORDS[a % len(WORDS)]} river flows past {town} town. It is {a + 5} miles long."
        qid = f"{id_prefix}{a}"
        start = context.index(town) + (2 if qid in bad_offsets else 0)
        qas = [
            {"id": qid, "question": "Which town?", "answers": [{"text": town, "answer_start": start}]},
            {"id": f"{qid}-u", "question": "Who built it?", "answers": [], "is_impossible": True},
        ]
        data.append({"title": f"Article {a}", "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "v2.0", "data": data}


def squad_dir(root: Path, doc: dict | str | bytes, name: str = "dev-v2.0.labelled-half.json") -> Path:
    """A data dir where dataset `squad_v2` finds `doc` (JSON-encoded unless text / bytes)."""
    folder = root / "squad_v2"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    else:
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return root


def without(doc: dict, path: tuple, key: str) -> dict:
    node = doc
    for part in path:
        node = node[part]
    del node[key]
    return doc


def string_offset(doc: dict) -> dict:
    answer = doc["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]
    answer["answer_start"] = str(answer["answer_start"])
    return doc


# ------------------------------------------------------------------------------------------- data files

BAD_FILES = {
    "malformed JSON": ('{"version": "v2.0", "data": [', "malformed JSON at line 1"),
    "empty file": ("", "the file is empty"),
    "non-UTF-8": ('{"data": [{"title": "Caf\xe9"}]}'.encode("latin-1"), "not valid UTF-8"),
    "top level a list": ("[]", "top level must be an object"),
    "missing data": (json.dumps({"version": "v2.0"}), "missing key 'data'"),
    "missing paragraphs": (json.dumps(without(squad_doc(), ("data", 0), "paragraphs")), "missing key 'paragraphs'"),
    "missing qas": (
        json.dumps(without(squad_doc(), ("data", 0, "paragraphs", 0), "qas")),
        "data[0].paragraphs[0]: missing key 'qas'",
    ),
    "missing answers": (
        json.dumps(without(squad_doc(), ("data", 1, "paragraphs", 0, "qas", 0), "answers")),
        "data[1].paragraphs[0].qas[0]: missing key 'answers'",
    ),
    "answer_start not an integer": (json.dumps(string_offset(squad_doc())), "'answer_start' must be an integer"),
    "duplicate question id": (
        json.dumps(squad_doc()).replace('"q1"', '"q0"', 1),
        "duplicate question id 'q0'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_data_file_is_one_line_for_score_and_evaluate(case: str, cli, tmp_path: Path):
    content, problem = BAD_FILES[case]
    data_dir = squad_dir(tmp_path / "data", content)
    path = data_dir / "squad_v2" / "dev-v2.0.labelled-half.json"
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"q0": "zeta"}))

    assert_one_line_error(cli("score", "--data", path, "--predictions", predictions), path, problem)
    # evaluate reads the same file through --data-dir; the model is never reached
    result = cli("evaluate", "--model", NO_MODEL, "--data-dir", data_dir, "--out", tmp_path / "out")
    assert_one_line_error(result, path, problem)
    assert not (tmp_path / "out").exists()


def test_bad_files_through_the_console_script(tmp_path: Path):
    """As a user sees it: one line on stderr (logging set up by main), nothing on stdout, status 2."""
    data = tmp_path / "broken.json"
    data.write_bytes(b'{"data": [{"title": "x", "paragraphs": [{"context": "\xff\xfe"}]}]}')
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text('{"id": "q0", "answer": "x"}\n{"id": "q0", "answer": ', encoding="utf-8")
    result = qadistill("score", "--data", data, "--predictions", predictions)
    assert_one_line_error(result, data, "not valid UTF-8 (byte 0xff at offset")
    assert result.stdout == ""

    data.write_text(json.dumps(squad_doc()), encoding="utf-8")
    result = qadistill("score", "--data", data, "--predictions", predictions)
    assert_one_line_error(result, predictions, "line 2: malformed JSON")


def test_duplicate_ids_across_the_files_of_one_dataset(cli, tmp_path: Path):
    data_dir = squad_dir(tmp_path / "data", squad_doc())
    squad_dir(data_dir, squad_doc(id_prefix="q"), name="train-v2.0.first-11-articles.json")
    result = cli("evaluate", "--model", NO_MODEL, "--data-dir", data_dir, "--out", tmp_path / "out")
    assert_one_line_error(result, "question id 'q0' appears in both", "train-v2.0.first-11-articles.json")


# ---------------------------------------------------------------------------------------- answer offsets


def test_wrong_offsets_are_an_error_with_strict(cli, tmp_path: Path):
    data_dir = squad_dir(tmp_path / "data", squad_doc(bad_offsets=("q2", "q4")))
    path = data_dir / "squad_v2" / "dev-v2.0.labelled-half.json"
    result = cli("evaluate", "--model", NO_MODEL, "--data-dir", data_dir, "--out", tmp_path / "out", "--strict")
    assert_one_line_error(result, path, "data[2].paragraphs[0].qas[0]", "question 'q2'", "answer_start=")


def test_wrong_offsets_are_an_error_with_strict_in_finetune(cli, pythia_dir: Path, tmp_path: Path):
    data_dir = squad_dir(tmp_path / "data", squad_doc(bad_offsets=("q2",)))
    args = ["finetune", "--model", pythia_dir, "--out", tmp_path / "run", "--data-dir", data_dir, "--max-steps", "1"]
    result = cli(*args, "--no-progress", "data.strict=true")
    assert_one_line_error(result, "dev-v2.0.labelled-half.json", "question 'q2'")
    assert not (tmp_path / "run" / "model").exists()


def test_wrong_offsets_keep_every_question_in_evaluation(cli, pythia_dir: Path, tmp_path: Path, caplog):
    """Every answerable question has a wrong answer_start (two of them a text that is nowhere in the context): the
    evaluation still scores every question, as the official scorers do (dropping them would let a model that always
    abstains score 100 EM), and the one warning says what was done."""
    doc = squad_doc(articles=8, bad_offsets=tuple(f"q{a}" for a in range(8)))
    for a in (1, 6):
        doc["data"][a]["paragraphs"][0]["qas"][0]["answers"][0]["text"] = "Atlantis"
    data_dir = squad_dir(tmp_path / "data", doc)
    out = tmp_path / "out"
    args = ["--data-dir", data_dir, "--out", out, "--max-new-tokens", "2", "--fractions", "0.25,0.5,0.125,0.125"]
    with caplog.at_level(logging.WARNING, logger="qadistill.data"):
        result = cli("evaluate", "--model", pythia_dir, *args)
    assert result.code == 0, result.stderr[-2000:]
    warnings = [r.getMessage() for r in caplog.records if r.name == "qadistill.data"]
    assert len(warnings) == 1, warnings
    assert "8 answer(s) have an answer_start that does not point at their text: 6 corrected" in warnings[0]
    assert "2 not found in the context (still scored, not used as training spans)" in warnings[0]
    assert warnings[0].endswith("every question is kept")
    split_ids = json.loads((out / "split_ids.json").read_text())
    assert sum(len(ids) for ids in split_ids.values()) == 16  # no question left out of the splits
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["total"] == len(split_ids["validation"]) == 8
    assert metrics["HasAns_total"] == metrics["NoAns_total"] == 4


# ------------------------------------------------------------------------------------------------ configs

RUN_CONFIG = """\
name: tiny
teachers: [{name: t, model: MODEL, students: [{name: s, prune: half}]}]
methods: [{name: ft, kind: finetune}]
datasets: [demo-en]
train: {max_steps: 2}
"""


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (("max_steps: 2", "max_steps: 2, learning_rate: 0.1"), ["train.learning_rate", "unknown key"]),
        (("max_steps: 2", "max_steps: 2, lr: -1"), ["train.lr", "greater than 0"]),
        (("max_steps: 2", "max_steps: 0"), ["train.max_steps", "greater than 0"]),
        (("datasets: [demo-en]", "datasets: [demo-xx]"), ["datasets", "unknown dataset 'demo-xx'"]),
        (("name: tiny", "name: tiny\nseeds: [0, 0]"), ["seeds", "listed twice"]),
        (("name: tiny", "name: tiny\nshots: [2]"), ["shots.0"]),
        (("kind: finetune", "kind: finetune, colour: red"), ["methods.0.colour", "unknown key"]),
        (("train: {max_steps: 2}", "train: [1, 2"), ["invalid YAML at line"]),
    ],
)
def test_bad_run_config_is_one_line(edit: tuple[str, str], names: list[str], cli, tmp_path: Path):
    config = tmp_path / "cfg.yaml"
    config.write_text(RUN_CONFIG.replace("MODEL", str(tmp_path)).replace(*edit), encoding="utf-8")
    result = cli("run", config, "--out", tmp_path / "run", "--dry-run")
    assert_one_line_error(result, config, *names)
    assert not (tmp_path / "run").exists()


def test_bad_run_override_names_the_override(cli, tmp_path: Path):
    config = tmp_path / "cfg.yaml"
    config.write_text(RUN_CONFIG.replace("MODEL", str(tmp_path)), encoding="utf-8")
    result = cli("run", config, "train.batch_size=0", "--out", tmp_path / "run", "--dry-run")
    assert_one_line_error(result, "train.batch_size", "from override 'train.batch_size=0'")


@pytest.mark.parametrize(
    ("yaml_text", "names"),
    [
        ("train: {max_steps: 2, learning_rate: 0.1}\n", ["train.learning_rate", "Extra inputs"]),
        ("train: {max_steps: 0}\n", ["train.max_steps", "greater than 0"]),
        ("prompt: {max_prompt_tokens: 8}\n", ["prompt.max_prompt_tokens", "greater than or equal to 32"]),
        ("data: {splits: {train: 2}}\n", ["data.splits.train"]),
        ("train: {nan_policy: ignore}\n", ["train.nan_policy"]),
        ("- just\n- a list\n", ["must hold a mapping"]),
        ("train: {max_steps: [\n", ["not valid YAML"]),
    ],
)
def test_bad_finetune_config_is_one_line(yaml_text: str, names: list[str], cli, pythia_dir: Path, tmp_path: Path):
    config = tmp_path / "job.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    result = cli("finetune", "--model", pythia_dir, "--out", tmp_path / "run", "--config", config)
    assert_one_line_error(result, *names)
    assert not (tmp_path / "run").exists()


def test_bad_finetune_config_error_names_the_file(cli, pythia_dir: Path, tmp_path: Path):
    config = tmp_path / "job.yaml"
    config.write_text("train: {learning_rate: 0.1}\n", encoding="utf-8")
    result = cli("finetune", "--model", pythia_dir, "--out", tmp_path / "run", "--config", config)
    assert_one_line_error(result, config, "train.learning_rate")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--limit", "0"], ["--limit must be a positive number", "got 0"]),
        (["--shots", "2"], ["shots"]),
        (["--max-prompt-tokens", "8"], ["max_prompt_tokens"]),
        (["--batch-size", "0"], ["batch_size"]),
        (["--dtype", "float64"], ["dtype"]),
        (["--dataset", "squad_v3"], ["unknown dataset 'squad_v3'"]),
        (["--split", "dev"], ["split: Input should be 'train', 'validation' or 'test'"]),
        (["--fractions", "0.5,0.5"], ["--fractions must be four numbers"]),
        (["--fractions", "0.5,0.5,0.5,0.5"], ["split fractions must sum to 1"]),
        (["--data-dir", "/nonexistent/data"], ["/nonexistent/data", "no such folder"]),
    ],
)
def test_bad_evaluate_options_are_one_line(args: list[str], names: list[str], cli, tmp_path: Path):
    result = cli("evaluate", "--model", NO_MODEL, "--dataset", "demo-en", "--out", tmp_path / "out", *args)
    assert_one_line_error(result, *names)


# ------------------------------------------------------------------------------------------------- models


def test_model_folder_without_weights(cli, no_weights_dir: Path, pythia_dir: Path, tmp_path: Path):
    problem = f"model folder {no_weights_dir} has no weights (*.safetensors)"
    result = cli("evaluate", "--model", no_weights_dir, *EVALUATE_ARGS, "--out", tmp_path / "eval")
    assert_one_line_error(result, problem)
    result = cli("finetune", "--model", no_weights_dir, "--out", tmp_path / "ft", "--max-steps", "1", *FINETUNE_ARGS)
    assert_one_line_error(result, problem)
    result = cli(
        "distill", "--teacher", pythia_dir, "--student", no_weights_dir, "--out", tmp_path / "kd", "--max-steps", "1"
    )
    assert_one_line_error(result, problem)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("evaluate", "--model", empty, *EVALUATE_ARGS, "--out", tmp_path / "e2")
    assert_one_line_error(result, empty, "has no tokenizer files")
    missing = tmp_path / "missing"
    result = cli("evaluate", "--model", missing, *EVALUATE_ARGS, "--out", tmp_path / "e3")
    assert_one_line_error(result, missing, "does not exist")
    assert not any((tmp_path / name / "model").exists() for name in ("ft", "kd"))


def test_damaged_weight_file_is_one_line(cli, pythia_dir: Path, tmp_path: Path):
    """A truncated model.safetensors (an interrupted copy) is a one-line error, not a traceback."""
    folder = tmp_path / "truncated"
    shutil.copytree(pythia_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100_000])
    result = cli("evaluate", "--model", folder, *EVALUATE_ARGS, "--out", tmp_path / "eval")
    assert_one_line_error(result, f"could not load model folder {folder}: SafetensorError")


@pytest.mark.slow
def test_teacher_and_student_with_different_tokenizers(pythia_dir: Path, qwen_dir: Path, tmp_path: Path):
    """Console script: exactly one line (no weight-loading progress bars around it), naming both models."""
    out = tmp_path / "kd"
    args = ["distill", "--teacher", pythia_dir, "--student", qwen_dir, "--out", out, "--max-steps", "1"]
    result = qadistill(*args, *FINETUNE_ARGS[:4], "--no-progress")
    line = assert_one_line_error(result, "teacher and student use different tokenizers", pythia_dir, qwen_dir)
    assert "50277 tokens" in line and "151665" in line
    assert not (out / "model").exists() and not (out / "checkpoint").exists()


# ------------------------------------------------------------------------------ prompts vs model context


def long_example(words: int = 400, question_words: int = 4) -> QAExample:
    context = " ".join(f"{WORDS[i % len(WORDS)]}{i}" for i in range(words)) + " The answer is Zurich."
    return QAExample(
        id="long-1",
        title="Long",
        context=context,
        question=" ".join(["Where"] * question_words) + "?",
        answers=(),
    )


def test_fit_to_context_clamps_the_prompt_budget():
    fmt = PromptFormat(max_prompt_tokens=768)
    assert fit_to_context(fmt, None, 33) is fmt  # unknown context: unchanged
    assert fit_to_context(fmt, 2048, 33) is fmt  # fits: unchanged
    assert fit_to_context(fmt, 128, 17).max_prompt_tokens == 111
    with pytest.raises(QADistillError, match="context of 40 tokens leaves 7 for the prompt after 33 answer tokens"):
        fit_to_context(fmt, 40, 33)


def test_prompts_are_truncated_to_the_models_context(neox_tok, caplog):
    """A 768-token budget on a model with 128 positions: contexts are cut so prompt + answer fit in 128."""
    from qadistill.models import build_tiny_model

    model = build_tiny_model("pythia", neox_tok, hidden_size=16, num_layers=1, num_heads=2, max_position_embeddings=128)
    fmt = PromptFormat(max_prompt_tokens=768, style="plain")
    example = long_example()
    assert len(prompt_ids(neox_tok, build_prompt(example, fmt, neox_tok))) > 400  # the unclamped prompt
    settings = GenerationConfig(batch_size=2, max_new_tokens=16)
    with caplog.at_level(logging.WARNING, logger="qadistill.prompts"):
        (prediction,) = predict(model, neox_tok, [example], fmt, [], 0, settings, progress=False)
    assert len(prompt_ids(neox_tok, prediction.prompt)) + 16 <= 128
    assert prediction.prompt.startswith(fmt.template.instruction)  # the instruction and question are never cut
    assert prediction.prompt.rstrip().endswith("Question: Where Where Where Where?\nAnswer:")
    assert "prompt budget lowered from 768 to 111 tokens" in caplog.text


def test_prompt_that_cannot_fit_the_context_is_an_error(neox_tok):
    from qadistill.models import build_tiny_model

    model = build_tiny_model("pythia", neox_tok, hidden_size=16, num_layers=1, num_heads=2, max_position_embeddings=96)
    fmt = PromptFormat(max_prompt_tokens=768, style="plain")
    settings = GenerationConfig(batch_size=2, max_new_tokens=16)
    with pytest.raises(QADistillError, match=r"question 'long-1': its prompt has \d+ tokens even with the context cut"):
        predict(model, neox_tok, [long_example(question_words=120)], fmt, [], 0, settings, progress=False)
    with pytest.raises(QADistillError, match="context of 96 tokens leaves 15 for the prompt after 81 answer tokens"):
        predict(
            model,
            neox_tok,
            [long_example()],
            fmt,
            [],
            0,
            GenerationConfig(batch_size=2, max_new_tokens=80),
            progress=False,
        )


def test_evaluate_cli_fits_prompts_to_a_small_context(cli, neox_tok, tmp_path: Path):
    from qadistill.models import build_tiny_model, save_model

    model = build_tiny_model("pythia", neox_tok, hidden_size=16, num_layers=1, num_heads=2, max_position_embeddings=96)
    folder = save_model(model, neox_tok, tmp_path / "short-context")
    out = tmp_path / "eval"
    args = ["--dataset", "demo-en", "--limit", "3", "--max-new-tokens", "8", "--shots", "1"]
    result = cli("evaluate", "--model", folder, "--out", out, *args)  # default budget 768
    assert result.code == 0, result.stderr
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert all(len(prompt_ids(neox_tok, r["prompt"])) + 8 <= 96 for r in rows)


# ----------------------------------------------------------------------------------- empty splits, outputs


def test_split_that_ends_up_empty(cli, tmp_path: Path):
    out = tmp_path / "out"
    result = cli("evaluate", "--model", NO_MODEL, "--dataset", "demo-en", "--fractions", "1,0,0,0", "--out", out)
    assert_one_line_error(result, "split 'validation' of dataset 'demo-en' is empty")

    one_article = squad_dir(tmp_path / "one", squad_doc(articles=1))
    result = cli("evaluate", "--model", NO_MODEL, "--data-dir", one_article, "--out", out)
    assert_one_line_error(result, "is empty: only 1 articles in dataset 'squad_v2'", "dev-v2.0.labelled-half.json")

    no_questions = squad_dir(tmp_path / "none", {"version": "v2.0", "data": []})
    result = cli("evaluate", "--model", NO_MODEL, "--data-dir", no_questions, "--out", out)
    assert_one_line_error(result, "cannot split dataset 'squad_v2'", "dev-v2.0.labelled-half.json", "no examples")
    assert not out.exists()


def test_unusable_output_folder_fails_before_the_model_loads(cli, tmp_path: Path):
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    result = cli("evaluate", "--model", NO_MODEL, "--dataset", "demo-en", "--out", blocker / "eval")
    assert_one_line_error(result, f"cannot create folder {blocker / 'eval'}", "a file is in the way")
    assert blocker.read_text() == "not a folder"


def test_output_under_a_file_is_one_line_for_training_and_runs(cli, pythia_dir: Path, tmp_path: Path):
    """Any command's --out (here: below a file) is a one-line error, wherever it is first created."""
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    result = cli("finetune", "--model", pythia_dir, "--out", blocker / "ft", "--max-steps", "1", *FINETUNE_ARGS)
    assert_one_line_error(result, f"cannot create folder {blocker / 'ft'}: a file is in the way")
    config = tmp_path / "cfg.yaml"
    config.write_text(RUN_CONFIG.replace("MODEL", str(pythia_dir)), encoding="utf-8")
    run = cli("run", config, "--out", blocker / "run")
    assert_one_line_error(run, f"cannot create folder {blocker / 'run'}: a file is in the way")
    assert blocker.read_text() == "not a folder"


def test_non_finite_numbers_in_options_are_rejected(cli, tmp_path: Path):
    result = cli("evaluate", "--model", NO_MODEL, "--dataset", "demo-en", "--out", tmp_path, "--fractions", "nan,0,0,1")
    assert_one_line_error(result, "train")  # float('nan') parses; the split config must refuse it
