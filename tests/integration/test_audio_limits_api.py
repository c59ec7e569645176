"""Audio limits over HTTP (issue 9, finding 5): huge-once-decoded uploads, concurrent decodes.

An upload that would decode past the limits is answered from its header: 413 when it is
too long or too large decoded, 422 for a sample rate or channel count out of range, each
with its trace row. Decodes run in threads, at most ``MAX_CONCURRENT_DECODES`` at a time,
so that a burst of large uploads cannot hold many decoded clips in memory at once.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

import serving.codecs
from api.main import create_app
from api.settings import Settings
from ml.audio import decode_audio
from ml.errors import InvalidInputError
from serving.codecs import MAX_CONCURRENT_DECODES, AudioCodec, Body, Upload
from serving.errors import PayloadTooLarge
from serving.payload import InputRecord, Limits
from tests.factories import audio_input, silence, tone, write_audio_model
from tests.helpers import trace_of

MAX_SECONDS = 30.0


@pytest.fixture
def audio_client(
    attrition_store: Path, make_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    write_audio_model(attrition_store)
    with TestClient(create_app(make_settings(max_audio_seconds=MAX_SECONDS))) as client:
        yield client


@pytest.mark.parametrize(
    ("seconds", "rate", "channels", "fmt", "status", "words"),
    [
        (29.5, 384_000, 8, "FLAC", 422, "unsupported sample rate 384000 Hz"),
        (29.5, 192_000, 8, "FLAC", 413, "8 channels x 192000 Hz x 29.5 s decodes to"),
        (0.1, 16_000, 12, "WAV", 422, "12 channels"),
        (31.0, 16_000, 1, "FLAC", 413, "longer than the 30 s allowed"),
    ],
)
def test_an_upload_over_the_limits_is_refused_from_its_header(
    audio_client: TestClient,
    seconds: float,
    rate: int,
    channels: int,
    fmt: str,
    status: int,
    words: str,
) -> None:
    audio = silence(seconds, rate, channels, fmt=fmt)
    started = time.perf_counter()
    response = audio_client.post("/predict/instrument-mock", files={"file": ("a", audio)})
    elapsed = time.perf_counter() - started
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert elapsed < 1.0  # decoding the 384 kHz one took 3 s
    row = trace_of(audio_client, response.json()["request_id"])
    assert (row.outcome, row.input_kind) == ("invalid_input", "audio")
    assert row.input["size_bytes"] == len(audio)


def test_the_same_limits_hold_on_the_open_inference_protocol(audio_client: TestClient) -> None:
    audio = silence(29.5, 192_000, 8)
    # One BYTES element in the binary extension: its 4-byte length, then the file.
    binary = struct.pack("<I", len(audio)) + audio
    tensor = {
        "name": "file",
        "datatype": "BYTES",
        "shape": [1],
        "parameters": {"binary_data_size": len(binary)},
    }
    header = orjson.dumps({"inputs": [tensor]})
    response = audio_client.post(
        "/v2/models/instrument-mock/infer",
        content=header + binary,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
            "X-Request-ID": "v2-too-large",
        },
    )
    assert response.status_code == 400, response.text  # every bad input is a 400 under /v2
    assert "decodes to 45,312,000 samples" in response.json()["error"]
    assert trace_of(audio_client, "v2-too-large").outcome == "invalid_input"


def test_a_model_rate_above_48_khz_raises_the_budget() -> None:
    codec = AudioCodec()
    limits = Limits(max_batch_rows=1, max_audio_seconds=10.0)
    audio = tone(10.0, 96_000, 2, fmt="FLAC")
    body = Body("multipart/form-data", is_form=True, upload=Upload(audio, "a.flac"))

    with pytest.raises(PayloadTooLarge):
        asyncio.run(
            codec.from_body(body, audio_input(22_050, formats=["flac"]), limits, InputRecord())
        )
    payload = asyncio.run(
        codec.from_body(body, audio_input(96_000, formats=["flac"]), limits, InputRecord())
    )
    assert payload.extras["duration_seconds"] == 10.0


def test_at_most_the_allowed_decodes_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def slow_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)
            return decode_audio(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(serving.codecs, "decode_audio", slow_decode)
    codec = AudioCodec()
    schema = audio_input(22_050, formats=["flac"])
    limits = Limits(max_batch_rows=1, max_audio_seconds=MAX_SECONDS)
    body = Body(
        "multipart/form-data", is_form=True, upload=Upload(tone(0.2, 22_050, 2, fmt="FLAC"), "a")
    )

    async def burst() -> list[Any]:
        calls = [codec.from_body(body, schema, limits, InputRecord()) for _ in range(8)]
        return await asyncio.gather(*calls)

    assert len(asyncio.run(burst())) == 8
    assert most == MAX_CONCURRENT_DECODES
    # A second event loop (another app in the same process) gets its own slots.
    assert len(asyncio.run(burst())) == 8


def test_a_refused_decode_frees_its_slot() -> None:
    codec = AudioCodec(max_concurrent_decodes=1)
    schema = audio_input(22_050, formats=["flac"])
    limits = Limits(max_batch_rows=1, max_audio_seconds=MAX_SECONDS)
    bad = Body("multipart/form-data", is_form=True, upload=Upload(b"fLaC garbage", "a"))
    good = Body(
        "multipart/form-data", is_form=True, upload=Upload(tone(0.2, 22_050, fmt="FLAC"), "b")
    )

    async def run() -> None:
        for _ in range(3):
            with pytest.raises(InvalidInputError):
                await codec.from_body(bad, schema, limits, InputRecord())
        await asyncio.wait_for(codec.from_body(good, schema, limits, InputRecord()), 5)

    asyncio.run(run())


def test_a_cancelled_request_holds_its_slot_until_its_decode_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans: list[tuple[float, float]] = []
    started = threading.Event()

    def slow_decode(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        started.set()
        time.sleep(0.3)
        try:
            return decode_audio(*args, **kwargs)
        finally:
            spans.append((began, time.perf_counter()))

    monkeypatch.setattr(serving.codecs, "decode_audio", slow_decode)
    codec = AudioCodec(max_concurrent_decodes=1)
    schema = audio_input(22_050, formats=["flac"])
    limits = Limits(max_batch_rows=1, max_audio_seconds=MAX_SECONDS)
    body = Body(
        "multipart/form-data", is_form=True, upload=Upload(tone(0.2, 22_050, fmt="FLAC"), "a")
    )

    async def run() -> None:
        first = asyncio.create_task(codec.from_body(body, schema, limits, InputRecord()))
        await asyncio.to_thread(started.wait, 5)
        first.cancel()  # the client went away: its thread decodes on regardless
        with pytest.raises(asyncio.CancelledError):
            await first
        await codec.from_body(body, schema, limits, InputRecord())

    asyncio.run(run())
    (first_began, first_ended), (second_began, _) = sorted(spans)
    assert second_began >= first_ended


def test_an_audio_input_of_another_name_is_refused_naming_both(audio_client: TestClient) -> None:
    audio = silence(1.0, 22_050, 1)
    tensor = {"name": "audio", "datatype": "BYTES", "shape": [1], "data": [audio.hex()]}
    response = audio_client.post(
        "/v2/models/instrument-mock/infer",
        json={"inputs": [tensor]},
        headers={"X-Request-ID": "v2-misnamed"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "audio: unknown input" in error and "named 'file'" in error
    assert trace_of(audio_client, "v2-misnamed").outcome == "invalid_input"
