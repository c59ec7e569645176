"""The instrument CNN on a GPU (DEVICE=cuda) answers as it does on the CPU.

Skipped where no CUDA device is visible (the CI machine); run on a GPU machine with
``python -m pytest --noconftest -p no:cacheprovider tests/unit/test_audio_cuda.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ml.audio import decode_audio  # noqa: E402 - after the skip on purpose
from ml.manifest import read_manifest  # noqa: E402
from ml.runtime import runtime_class  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "instrument-cnn" / "1"
CLIPS = MODEL_DIR.parents[1] / "_evaluation" / "instrument-recognition"


def test_cuda_and_cpu_give_the_same_answers() -> None:
    manifest = read_manifest(MODEL_DIR / "manifest.json")
    runtimes = {}
    for device in ("cuda", "cpu"):
        runtime = runtime_class(manifest.framework)(manifest, MODEL_DIR, device)
        runtime.load()
        runtime.warm_up()
        runtimes[device] = runtime
    assert next(runtimes["cuda"].model.parameters()).is_cuda  # type: ignore[attr-defined]
    with (CLIPS / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        clip = decode_audio((CLIPS / row["file"]).read_bytes(), 30.0)
        on_gpu, on_cpu = (runtimes[d].predict([clip])[0] for d in ("cuda", "cpu"))
        assert on_gpu.label == on_cpu.label == row["label"]
        gpu = np.array([on_gpu.probabilities[label] for label in manifest.output.labels])
        cpu = np.array([on_cpu.probabilities[label] for label in manifest.output.labels])
        np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    runtimes["cuda"].unload()
