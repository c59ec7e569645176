"""Audio over HTTP (mock runtime): multipart uploads, what the trace keeps, every bad upload."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.factories import INSTRUMENT_LABELS, tone, write_audio_model
from tests.helpers import trace_of


@pytest.fixture
def audio_client(
    attrition_store: Path, make_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    write_audio_model(attrition_store)
    with TestClient(create_app(make_settings(max_audio_seconds=5))) as client:
        yield client


@pytest.mark.parametrize(("fmt", "name"), [("WAV", "a.wav"), ("FLAC", "b.flac"), ("OGG", "c.ogg")])
def test_upload_is_answered_and_traced_by_hash(
    audio_client: TestClient, fmt: str, name: str
) -> None:
    audio = tone(channels=2, fmt=fmt)
    response = audio_client.post("/predict/instrument-mock", files={"file": (name, audio)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] in INSTRUMENT_LABELS
    assert set(body["probabilities"]) == set(INSTRUMENT_LABELS)
    assert body["input"] == {"duration_seconds": 1.0, "sample_rate": 22050}
    row = trace_of(audio_client, body["request_id"])
    assert row.input_kind == "audio" and row.outcome == "ok"
    assert row.input == {
        "sha256": hashlib.sha256(audio).hexdigest(),
        "size_bytes": len(audio),
        "filename": name,
        "format": fmt.lower(),
        "duration_seconds": 1.0,
    }


@pytest.mark.parametrize(
    ("files", "status", "words"),
    [
        ({"file": ("empty.wav", b"")}, 422, "empty"),
        ({"file": ("notes.txt", b"just some text, not audio at all")}, 415, "not audio"),
        ({"file": ("bad.wav", b"RIFF\x24\x00\x00\x00WAVEfmt garbage")}, 422, "corrupt"),
        ({"file": ("long.wav", tone(seconds=6))}, 413, "longer than the 5 s"),
        ({"upload": ("a.wav", tone())}, 422, "field named 'file'"),
    ],
)
def test_bad_uploads_get_a_clear_4xx_and_a_trace(
    audio_client: TestClient, files: dict[str, tuple[str, bytes]], status: int, words: str
) -> None:
    response = audio_client.post("/predict/instrument-mock", files=files)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    row = trace_of(audio_client, response.json()["request_id"])
    assert row.outcome == "invalid_input" and row.input_kind == "audio"


def test_json_to_an_audio_model_is_415(audio_client: TestClient) -> None:
    response = audio_client.post("/predict/instrument-mock", json={"features": {"Age": 30}})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["error"]


def test_a_form_without_its_boundary_is_422_saying_what_to_send(audio_client: TestClient) -> None:
    response = audio_client.post(
        "/predict/instrument-mock", headers={"Content-Type": "multipart/form-data"}, content=b""
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "Missing boundary" in error and "in a field named 'file'" in error
    row = trace_of(audio_client, response.json()["request_id"])
    assert row.outcome == "invalid_input"


def test_a_file_over_the_body_limit_is_413(
    attrition_store: Path, make_settings: Callable[..., Settings]
) -> None:
    write_audio_model(attrition_store)
    with TestClient(create_app(make_settings(max_body_bytes=20_000))) as client:
        response = client.post("/predict/instrument-mock", files={"file": ("a.wav", tone(2))})
    assert response.status_code == 413
