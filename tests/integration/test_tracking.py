"""Experiment tracking: what a tracker receives equals train_log.jsonl (TensorBoard read back from its event files;
wandb offline, MLflow's file store and trackio's local mode where installed), and bad settings fail in one line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from qadistill.errors import QADistillError
from qadistill.jobs import build_job
from qadistill.models import build_tiny_model, load_real_tokenizer, save_model
from qadistill.tracking import TrackingConfig, log_evaluation, record_scalars, start_tracking
from qadistill.train.config import FinetuneJob
from qadistill.train.finetune import run_finetune

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(shared_data: Path, tmp_path_factory) -> Path:
    tokenizer = load_real_tokenizer("pythia", shared_data / "tokenizers")
    model = build_tiny_model("pythia", tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    return save_model(model, tokenizer, tmp_path_factory.mktemp("tiny") / "pythia")


def finetune(model: Path, out: Path, data_dir: Path, tracking: dict, steps: int = 6) -> list[dict]:
    job = FinetuneJob(
        model=str(model),
        out_dir=out,
        data={"dataset": "squad_v2", "data_dir": data_dir, "splits": {"max_train": 8}},
        prompt={"max_prompt_tokens": 64},
        train={"max_steps": steps, "batch_size": 2, "lr": 1e-3, "eval_interval": 2, "eval_examples": 2},
        tracking=tracking,
    )
    run_finetune(job, progress=False)
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def expected_scalars(records: list[dict]) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} that the log says a tracker must have received."""
    out: dict[str, dict[int, float]] = {}
    for record in records:
        for tag, value in record_scalars(record).items():
            out.setdefault(tag, {})[record["step"]] = value
    return out


def test_tensorboard_events_equal_the_train_log(tiny_model, shared_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    records = finetune(tiny_model, out, shared_data, {"report_to": ["tensorboard"], "project": "p", "run_name": "r"})
    events = EventAccumulator(str(out / "tracking" / "p" / "r"))
    events.Reload()
    logged = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    expected = expected_scalars(records)
    assert {"train/loss", "train/lr", "train/grad_norm", "eval/val_ce"} <= set(expected)
    assert set(logged) == set(expected)
    for tag, by_step in expected.items():
        assert logged[tag].keys() == by_step.keys(), tag
        for step, value in by_step.items():
            assert logged[tag][step] == pytest.approx(value, rel=1e-6), (tag, step)  # event files store float32


def test_tracking_is_off_by_default_and_does_not_change_resumption(tiny_model, shared_data, tmp_path):
    out = tmp_path / "run"
    finetune(tiny_model, out, shared_data, {}, steps=2)
    assert not (out / "tracking").exists()
    job = json.loads((out / "job.json").read_text())
    job["tracking"] = {"report_to": ["tensorboard"]}
    from qadistill.train.state import RunPaths, finished_result

    resumed = FinetuneJob.model_validate({**job, "resume": True})
    assert finished_result(resumed, RunPaths(out)) is not None  # turning tracking on keeps the finished run


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not _installed("wandb"), reason="wandb is not installed (pip install wandb)")
def test_wandb_offline_run_has_the_logged_history(tiny_model, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    records = finetune(tiny_model, out, shared_data, {"report_to": ["wandb"], "project": "p", "run_name": "r"})
    runs = list((out / "tracking" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    history: dict[str, dict[int, float]] = {}
    for record in wandb_records(runs[0]):
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    history.setdefault(key, {})[record.history.step.num] = json.loads(item.value_json)
    expected = expected_scalars(records)
    assert set(history) == set(expected)
    for tag, by_step in expected.items():
        assert history[tag] == pytest.approx(by_step), tag


def wandb_records(path: Path) -> list:
    """The protobuf records of an offline run's `.wandb` file (wandb ships no Python reader for it any more): a
    7-byte header, then 32 KiB blocks of chunks, each `crc32 (4) | length (2) | type (1) | data`, where type 1 is a
    whole record and 2/3/4 its first/middle/last part."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, block, pos, buffer, records = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        buffer += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buffer)
            records.append(record)
            buffer = b""
        elif kind == 0:
            break
    return records


@pytest.mark.skipif(not _installed("mlflow"), reason="mlflow is not installed (pip install mlflow)")
def test_mlflow_file_store_has_the_logged_metrics(tiny_model, shared_data, tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the local file store, in maintenance mode in MLflow 3
    out = tmp_path / "run"
    records = finetune(tiny_model, out, shared_data, {"report_to": ["mlflow"], "project": "p", "run_name": "r"})
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("p").experiment_id])
    assert run.info.run_name == "r"
    for tag, by_step in expected_scalars(records).items():
        logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, tag)}
        assert logged == pytest.approx(by_step), tag


@pytest.mark.skipif(not _installed("trackio"), reason="trackio is not installed (pip install trackio)")
def test_trackio_local_run_has_the_logged_metrics(tiny_model, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    import trackio.sqlite_storage as storage
    import trackio.utils

    for module in (storage, trackio.utils):  # read from the environment when trackio is first imported
        monkeypatch.setattr(module, "TRACKIO_DIR", tmp_path / "trackio")
    out = tmp_path / "run"
    records = finetune(tiny_model, out, shared_data, {"report_to": ["trackio"], "project": "p", "run_name": "r"})
    logs = storage.SQLiteStorage.get_logs("p", "r")
    expected = expected_scalars(records)
    for tag, by_step in expected.items():
        logged = {row["step"]: row[tag] for row in logs if tag in row}
        assert logged == pytest.approx(by_step), tag


def test_evaluation_metrics_are_logged_per_split(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrackingConfig(report_to=["tensorboard"], project="grid", run_name="stage/eval/test", dir=tmp_path)
    log_evaluation(cfg, tmp_path, "test", {"exact": 41.5, "f1": 50.25, "total": 60, "scorer": "squad_v2"})
    events = EventAccumulator(str(tmp_path / "grid" / "stage" / "eval" / "test"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["eval_test/exact", "eval_test/f1", "eval_test/total"]
    assert events.Scalars("eval_test/f1")[0].value == 50.25


def test_unknown_tracker_is_one_line_error():
    with pytest.raises(QADistillError, match="unknown tracker 'tensorbored' \\(choose from tensorboard, wandb"):
        build_job(FinetuneJob, {"model": "m", "out_dir": "o", "tracking": {"report_to": ["tensorbored"]}}, "job")


def test_missing_tracker_package_names_what_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(QADistillError, match="tracker 'wandb' is not installed: pip install wandb"):
        start_tracking(TrackingConfig(report_to=["wandb"]), tmp_path, {})
