"""Safety: safetensors only unless pickle is allowed explicitly; remote code only when asked for; output paths stay
inside the chosen folder; no network in the test suite (and a hub id fails fast, on one line, without it).
"""

from __future__ import annotations

import inspect
import json
import pickle
import socket
import time
from pathlib import Path

import pytest
from pytest_socket import SocketBlockedError
from robustness_support import EVALUATE_ARGS, FINETUNE_ARGS, FINETUNE_OVERRIDES, assert_one_line_error

from qadistill.config import ModelLoadConfig
from qadistill.errors import QADistillError
from qadistill.models import load_model, load_model_and_tokenizer, load_tokenizer

HUB_ID = "Qwen/Qwen2.5-0.5B"

# ------------------------------------------------------------------------------------------- pickle weights


def test_pickle_only_folder_is_refused_unless_allowed_by_evaluate(cli, pickle_dir: Path, pythia_dir: Path, tmp_path):
    problem = f"model folder {pickle_dir} has only pickle weights (pytorch_model.bin); pass --allow-pickle"
    assert_one_line_error(cli("evaluate", "--model", pickle_dir, *EVALUATE_ARGS, "--out", tmp_path / "no"), problem)
    assert not (tmp_path / "no" / "metrics.json").exists()

    allowed = cli("evaluate", "--model", pickle_dir, *EVALUATE_ARGS, "--out", tmp_path / "yes", "--allow-pickle")
    assert allowed.code == 0, allowed.stderr
    reference = cli("evaluate", "--model", pythia_dir, *EVALUATE_ARGS, "--out", tmp_path / "ref")
    assert reference.code == 0, reference.stderr
    predictions = [(tmp_path / run / "predictions.jsonl").read_bytes() for run in ("yes", "ref")]
    assert predictions[0] == predictions[1]  # the same weights, read from the pickle


def test_pickle_only_folder_is_refused_unless_allowed_by_finetune(cli, pickle_dir: Path, tmp_path: Path):
    args = ["finetune", "--model", pickle_dir, "--max-steps", "1", *FINETUNE_ARGS]
    refused = cli(*args, "--out", tmp_path / "no", *FINETUNE_OVERRIDES)
    assert_one_line_error(refused, f"model folder {pickle_dir} has only pickle weights")
    assert not (tmp_path / "no" / "model").exists()

    allowed = cli(*args, "--out", tmp_path / "yes", *FINETUNE_OVERRIDES, "load.allow_pickle=true")
    assert allowed.code == 0, allowed.stderr
    assert json.loads(allowed.stdout)["steps"] == 1
    assert (tmp_path / "yes" / "model" / "model.safetensors").is_file()  # what it writes is safetensors
    assert not list((tmp_path / "yes" / "model").glob("*.bin"))


def test_finetune_accepts_the_allow_pickle_flag(cli, pickle_dir: Path, tmp_path: Path):
    args = ["finetune", "--model", pickle_dir, "--max-steps", "1", *FINETUNE_ARGS, "--allow-pickle"]
    result = cli(*args, "--out", tmp_path / "run", *FINETUNE_OVERRIDES)
    assert result.code == 0, result.stderr


def test_safetensors_win_and_a_pickle_beside_them_is_never_unpickled(cli, pythia_dir: Path, tmp_path: Path):
    folder = tmp_path / "both"
    folder.mkdir()
    for item in pythia_dir.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    marker = tmp_path / "code-ran"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    result = cli("evaluate", "--model", folder, *EVALUATE_ARGS, "--out", tmp_path / "eval")
    assert result.code == 0, result.stderr
    assert not marker.exists()


class _Payload:
    """A pickle that runs code when loaded without restrictions (it creates `marker`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_allowed_pickle_is_still_loaded_without_running_code(cli, pythia_dir: Path, tmp_path: Path):
    """--allow-pickle reads tensors only (weights_only unpickling): a code-running pickle is refused on one line."""
    folder = tmp_path / "evil"
    folder.mkdir()
    for item in pythia_dir.iterdir():
        if item.suffix != ".safetensors":
            (folder / item.name).write_bytes(item.read_bytes())
    marker = tmp_path / "code-ran"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    result = cli("evaluate", "--model", folder, *EVALUATE_ARGS, "--out", tmp_path / "eval", "--allow-pickle")
    assert_one_line_error(result, f"could not load model folder {folder}")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------- remote code


class Recorder:
    """Stands in for `AutoModelForCausalLM` / `AutoTokenizer`: records the kwargs, then loads (or fails)."""

    def __init__(self, real, *, fail: bool) -> None:
        self.real, self.fail, self.calls = real, fail, []

    def from_pretrained(self, *args, **kwargs):
        self.calls.append(kwargs)
        if self.fail:
            raise OSError("stopped by the test after recording the call")
        return self.real.from_pretrained(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def recorders(monkeypatch) -> tuple[Recorder, Recorder]:
    """(tokenizer, model) recorders in the loading module; the model load fails once its kwargs are recorded."""
    import qadistill.models.loading as loading

    tokenizer = Recorder(loading.AutoTokenizer, fail=False)
    model = Recorder(loading.AutoModelForCausalLM, fail=True)
    monkeypatch.setattr(loading, "AutoTokenizer", tokenizer)
    monkeypatch.setattr(loading, "AutoModelForCausalLM", model)
    return tokenizer, model


def test_loaders_default_to_no_remote_code():
    for function in (load_model, load_tokenizer):
        assert inspect.signature(function).parameters["trust_remote_code"].default is False
    assert ModelLoadConfig().trust_remote_code is False


def test_remote_code_only_when_explicitly_set(cli, recorders, pythia_dir: Path, tmp_path: Path):
    tokenizer, model = recorders
    assert cli("evaluate", "--model", pythia_dir, *EVALUATE_ARGS, "--out", tmp_path / "a").code == 2
    assert cli("finetune", "--model", pythia_dir, "--out", tmp_path / "b", *FINETUNE_ARGS).code == 2
    assert cli("distill", "--teacher", pythia_dir, "--student", pythia_dir, "--out", tmp_path / "c").code == 2
    assert len(tokenizer.calls) == len(model.calls) == 3
    assert all(call["trust_remote_code"] is False for call in tokenizer.calls + model.calls)

    assert cli("evaluate", "--model", pythia_dir, *EVALUATE_ARGS, "--out", tmp_path / "d", "--trust-remote-code").code
    assert tokenizer.calls[-1]["trust_remote_code"] is True and model.calls[-1]["trust_remote_code"] is True


def test_hub_loads_ask_for_no_remote_code(recorders):
    tokenizer, model = recorders
    tokenizer.fail = True
    with pytest.raises(QADistillError, match=f"^could not load tokenizer '{HUB_ID}' from the Hugging Face hub"):
        load_model_and_tokenizer(HUB_ID)
    with pytest.raises(QADistillError, match=f"^could not load model '{HUB_ID}' from the Hugging Face hub"):
        load_model(HUB_ID)
    assert [c["trust_remote_code"] for c in tokenizer.calls + model.calls] == [False, False]
    assert model.calls[0]["use_safetensors"] is True  # and safetensors only, from the hub too


# -------------------------------------------------------------------------------------------- output paths

RUN_CONFIG = {
    "name": "study",
    "teachers": [{"name": "teacher", "model": "pythia-70m", "students": [{"name": "student", "prune": "half"}]}],
    "methods": [{"name": "ft", "kind": "finetune"}],
    "datasets": ["demo-en"],
}
NAME_FIELDS = {
    "experiment name": ("name",),
    "teacher name": ("teachers", 0, "name"),
    "student name": ("teachers", 0, "students", 0, "name"),
    "method name": ("methods", 0, "name"),
}


@pytest.mark.parametrize("bad", ["..", "../escape", "/tmp/absolute", "a/b", "a\\b", ".hidden", "x/../../y"])
@pytest.mark.parametrize("field", sorted(NAME_FIELDS))
def test_names_that_could_leave_the_run_folder_are_rejected(field: str, bad: str, cli, tmp_path: Path):
    config = json.loads(json.dumps(RUN_CONFIG))
    *parents, key = NAME_FIELDS[field]
    node = config
    for part in parents:
        node = node[part]
    node[key] = bad
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    out = tmp_path / "runs" / "here"
    result = cli("run", path, "--out", out)
    location = ".".join(str(p) for p in NAME_FIELDS[field])
    assert_one_line_error(result, path, f"{location}: {field} {bad!r} must be")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]  # nothing written anywhere


def test_dataset_names_cannot_be_paths(cli, tmp_path: Path):
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps({**RUN_CONFIG, "datasets": ["../demo-en"]}), encoding="utf-8")
    assert_one_line_error(cli("run", path, "--dry-run"), "unknown dataset '../demo-en'")


# ------------------------------------------------------------------------------------------------- network


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_outbound_connections_fail_in_the_test_suite():
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("example.com", 80), timeout=5)


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_a_hub_model_fails_fast_on_one_line_without_network(cli, monkeypatch, tmp_path: Path):
    if _cached(HUB_ID):
        pytest.skip(f"{HUB_ID} is in the local Hugging Face cache; it would load without the network")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # really try: the socket guard must stop it
    started = time.monotonic()
    with pytest.raises(QADistillError) as err:
        load_model(HUB_ID)
    assert time.monotonic() - started < 15
    message = str(err.value)
    assert message.startswith(f"could not load model '{HUB_ID}' from the Hugging Face hub: ")
    assert "\n" not in message and len(message) < 500

    started = time.monotonic()
    result = cli("evaluate", "--model", HUB_ID, *EVALUATE_ARGS, "--out", tmp_path / "eval")
    assert time.monotonic() - started < 30
    assert_one_line_error(result, f"'{HUB_ID}' from the Hugging Face hub")
