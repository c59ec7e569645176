"""End to end: a user's own forest pipeline packaged by ``registry add``, served over HTTP by
``python -m api`` beside the bundled models, answering what its ``predict_proba`` answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from registry.__main__ import main
from tests.byom import TARGET, attrition_sample, random_forest_pipeline, request_rows
from tests.helpers import ATTRITION_MODELS, copy_model
from tests.live_server import LiveServer, live_api, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LABELS = ["No", "Yes"]


@dataclass(frozen=True)
class Served:
    server: LiveServer
    pipeline: Pipeline
    features: pd.DataFrame


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("byom")
    store = workdir / "models"
    for name in ATTRITION_MODELS:
        copy_model(store, name)
    frame = attrition_sample()
    fit_rows = frame.iloc[::2]
    pipeline = random_forest_pipeline(fit_rows.drop(columns=TARGET), fit_rows[TARGET])
    joblib.dump(pipeline, workdir / "forest.joblib")
    frame.to_csv(workdir / "sample.csv", index=False)
    arguments = [
        "--artifact",
        str(workdir / "forest.joblib"),
        "--sample",
        str(workdir / "sample.csv"),
    ]
    assert (
        main(["--models-dir", str(store), "add", "my-forest", *arguments, "--target", TARGET]) == 0
    )
    with live_api(workdir, server_env(store, workdir)) as server:
        yield Served(server, pipeline, frame.drop(columns=TARGET))


def test_each_answer_equals_predict_proba_within_1e_5(served: Served) -> None:
    rows = request_rows(served.features)
    expected = served.pipeline.predict_proba(served.features)
    for index in range(0, len(rows), 29):  # a row with a missing Age among them
        response = httpx.post(
            f"{served.server.url}/predict/my-forest", json={"features": rows[index]}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["version"], body["fallback"]) == ("my-forest", "1", False)
        probabilities = [body["probabilities"][label] for label in LABELS]
        np.testing.assert_allclose(probabilities, expected[index], atol=1e-5)
        assert body["label"] == LABELS[int(np.argmax(expected[index]))]
    assert any(rows[index]["Age"] is None for index in range(0, len(rows), 29))


def test_a_batch_and_the_evaluation_beside_the_bundled_models(served: Served) -> None:
    url = served.server.url
    rows = request_rows(served.features)
    batch = httpx.post(f"{url}/predict/my-forest", json={"instances": rows})
    assert batch.status_code == 200, batch.text
    served_probabilities = [
        [p["probabilities"][label] for label in LABELS] for p in batch.json()["predictions"]
    ]
    expected = served.pipeline.predict_proba(served.features)
    np.testing.assert_allclose(served_probabilities, expected, atol=1e-5)
    evaluation = httpx.get(f"{url}/models/my-forest/evaluation", timeout=30)
    assert evaluation.status_code == 200, evaluation.text
    assert evaluation.json()["metrics"]["roc_auc"] > 0.7
    listed = {model["name"] for model in httpx.get(f"{url}/models").json()["models"]}
    assert {"my-forest", *ATTRITION_MODELS} <= listed
    refused = httpx.post(f"{url}/predict/my-forest", json={"features": {**rows[1], "Age": 5}})
    assert refused.status_code == 422 and "Age" in refused.text
