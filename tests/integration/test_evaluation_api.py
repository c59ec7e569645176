"""GET /models/{name}/evaluation: metrics measured by running the model on its held-out set."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

import api.evaluation
from api.evaluation import ModelEvaluation, ModelEvaluator
from api.main import create_app
from api.settings import Settings
from ml.manifest import MANIFEST_FILENAME, read_manifest
from ml.runtime import ModelRuntime
from registry.factories import mock_runtimes
from registry.registry import ModelRegistry
from tests.factories import audio_input, evaluation, make_manifest, write_model

HELDOUT_ROWS = 294


def test_logreg_reproduces_the_manifests_heldout_metrics(
    real_client: TestClient, attrition_store: Path
) -> None:
    manifest = read_manifest(attrition_store / "attrition-logreg" / "1" / MANIFEST_FILENAME)
    recorded = manifest.evaluations[0]

    body = real_client.get("/models/attrition-logreg/evaluation").json()

    assert body["runtime"] == "sklearn" and body["samples"] == HELDOUT_ROWS
    assert body["metrics"]["roc_auc"] == pytest.approx(recorded.metrics["roc_auc"], abs=1e-12)
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert body["metrics"][metric] == pytest.approx(recorded.metrics[metric])
    assert body["confusion_matrix"] == recorded.confusion_matrix
    assert body["recorded_metrics"] == recorded.metrics
    assert body["dataset"] == "_evaluation/employee-attrition/heldout.csv"


def test_evaluation_has_what_the_charts_need(client: TestClient) -> None:
    body = client.get("/models/attrition-gbm/evaluation").json()

    assert body["labels"] == ["No", "Yes"] and body["positive_label"] == "Yes"
    roc = body["roc"]
    assert (roc["false_positive_rate"][0], roc["true_positive_rate"][0]) == (0.0, 0.0)
    assert (roc["false_positive_rate"][-1], roc["true_positive_rate"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc["false_positive_rate"]) >= 0)
    assert roc["auc"] == body["metrics"]["roc_auc"]
    assert np.sum(body["confusion_matrix"]) == HELDOUT_ROWS
    assert set(body["per_class"]) == {"No", "Yes"}
    assert body["per_class"]["Yes"]["support"] == sum(body["confusion_matrix"][1])
    assert 0 < body["latency"]["p50_ms"] <= body["latency"]["p95_ms"] <= body["latency"]["max_ms"]
    assert len(body["predictions"]) == HELDOUT_ROWS
    first = body["predictions"][0]
    assert first["id"] == "1" and first["predicted_label"] in ("No", "Yes")
    assert set(first["probabilities"]) == {"No", "Yes"}


def test_evaluation_is_cached_per_version(client: TestClient) -> None:
    first = client.get("/models/attrition-logreg/evaluation").json()
    again = client.get("/models/attrition-logreg/evaluation", params={"version": "1"}).json()

    assert again["evaluated_at"] == first["evaluated_at"]
    assert again["version"] == "1"


def test_concurrent_first_requests_compute_once(
    attrition_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry.from_dir(attrition_store, mock_runtimes)
    evaluator = ModelEvaluator(max_audio_seconds=30)
    calls: list[str] = []
    evaluate_runtime = api.evaluation.evaluate_runtime

    def counting(runtime: ModelRuntime, *args: Any) -> ModelEvaluation:
        calls.append(runtime.manifest.ref)
        return evaluate_runtime(runtime, *args)

    monkeypatch.setattr(api.evaluation, "evaluate_runtime", counting)

    async def five_at_once() -> list[ModelEvaluation]:
        return list(
            await asyncio.gather(*(evaluator.evaluate(registry, "attrition-gbm") for _ in range(5)))
        )

    results = asyncio.run(five_at_once())

    assert calls == ["attrition-gbm@1"]
    assert all(result is results[0] for result in results)


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/models/nope/evaluation", 404, "nope"),
        ("/models/attrition-gbm/evaluation?version=9", 404, "no version '9'"),
        ("/models/Bad%20Name/evaluation", 422, "invalid model reference"),
    ],
)
def test_unknown_models_and_bad_references(
    client: TestClient, path: str, status: int, words: str
) -> None:
    response = client.get(path)

    assert response.status_code == status
    assert words in response.json()["error"]


def test_no_evaluation_set_is_409(client: TestClient, attrition_store: Path) -> None:
    shutil.rmtree(attrition_store / "_evaluation")

    response = client.get("/models/attrition-logreg/evaluation")

    assert response.status_code == 409
    assert "has no evaluation set" in response.json()["error"]
    assert "_evaluation/employee-attrition/heldout.csv" in response.json()["error"]


def test_a_model_that_cannot_load_is_not_evaluated_through_its_fallback(
    make_settings: Callable[..., Settings], attrition_store: Path
) -> None:
    (attrition_store / "attrition-logreg" / "1" / "model.joblib").write_bytes(b"tampered")

    with TestClient(create_app(make_settings(env="dev"))) as real_client:
        response = real_client.get("/models/attrition-logreg/evaluation")

    assert response.status_code == 503
    assert "attrition-logreg@1 cannot be evaluated" in response.json()["error"]


def _write_audio_model(store: Path, labels: list[str]) -> None:
    """A mock-served audio model and a three-clip evaluation folder in ``store``."""
    write_model(
        store,
        make_manifest(
            "tones",
            "1",
            task="tones",
            framework="torch-audio",
            input=audio_input(sample_rate=8000, clip_seconds=1.0, formats=["wav"]),
            labels=labels,
            evaluations=[
                evaluation("../elsewhere/train-set", samples=9),
                evaluation("_evaluation/tones", samples=3, metrics={"accuracy": 0.5}),
            ],
        ),
    )
    clips = store / "_evaluation" / "tones"
    clips.mkdir(parents=True)
    rows = ["file,label"]
    for index, label in enumerate(["low", "high", "high"]):
        tone = np.sin(np.arange(8000) * (index + 1) * 0.05).astype(np.float32)
        soundfile.write(str(clips / f"clip{index}.wav"), 0.5 * tone, 8000)
        rows.append(f"clip{index}.wav,{label}")
    (clips / "labels.csv").write_text("\n".join(rows) + "\n")


def test_audio_models_are_evaluated_on_the_clips_of_their_task(
    make_settings: Callable[..., Settings], attrition_store: Path
) -> None:
    _write_audio_model(attrition_store, ["low", "mid", "high"])

    with TestClient(create_app(make_settings())) as mock_client:
        body = mock_client.get("/models/tones/evaluation").json()

    assert body["dataset"] == "_evaluation/tones" and body["samples"] == 3
    assert [p["id"] for p in body["predictions"]] == ["clip0.wav", "clip1.wav", "clip2.wav"]
    assert body["roc"] is None and body["positive_label"] is None
    assert len(body["confusion_matrix"]) == 3 and np.sum(body["confusion_matrix"]) == 3
    assert body["recorded_metrics"] == {"accuracy": 0.5}


def test_labels_the_model_does_not_know_make_the_set_unusable(
    make_settings: Callable[..., Settings], attrition_store: Path
) -> None:
    _write_audio_model(attrition_store, ["low", "mid"])

    with TestClient(create_app(make_settings())) as mock_client:
        response = mock_client.get("/models/tones/evaluation")

    assert response.status_code == 409
    assert "['high']" in response.json()["error"]
