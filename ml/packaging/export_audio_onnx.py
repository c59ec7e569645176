"""Export a torch audio CNN (framework "torch-audio") to its served form, "onnx-audio".

    python -m ml.packaging.export_audio_onnx models/instrument-cnn/1 --out models/instrument-cnn/2

Writes ``model.onnx`` (the network, a dynamic batch of windows), ``mel_filterbank.npy`` (what
``ml.log_mel`` applies instead of librosa) and the manifest into ``--out`` (the source folder
itself when not given: training exports in place), keeping ``model.pt`` beside them as the
conversion's source. The export is proven on the committed evaluation clips of the task
before anything is written: the graph against the network on the same log-mel windows
(``max_logit_difference``), and the served runtime (numpy features, ONNX Runtime) against
the torch runtime (librosa, torch) on the decoded clips, probabilities and labels.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ml import features
from ml.evaluation_data import load_samples
from ml.manifest import (
    HashedFile,
    ModelManifest,
    OnnxConversion,
    read_manifest,
    sha256_file,
    write_manifest,
)
from ml.onnx_audio_runtime import OnnxAudioRuntime
from ml.packaging.errors import PackagingError
from ml.torch_audio_runtime import TorchAudioRuntime

logger = logging.getLogger(__name__)

ONNX_ARTIFACT = "model.onnx"
FILTERBANK_FILE = "mel_filterbank.npy"
OPSET = 17
MAX_LOGIT_DIFFERENCE = 1e-3
"""float32 graphs of the same weights: anything above is a wrong export, not rounding."""
MAX_PROBABILITY_DIFFERENCE = 1e-3
"""End to end, numpy log-mel (``ml.log_mel.LIBROSA_TOLERANCE``) and ONNX Runtime included."""
_MAX_CLIP_SECONDS = 30.0
_INPUT, _OUTPUT = "log_mel", "logits"


@dataclass(frozen=True)
class AudioProof:
    clips: int
    max_logit_difference: float
    max_probability_difference: float
    same_labels: bool

    @property
    def holds(self) -> bool:
        return (
            self.same_labels
            and self.max_logit_difference <= MAX_LOGIT_DIFFERENCE
            and self.max_probability_difference <= MAX_PROBABILITY_DIFFERENCE
        )

    def describe(self) -> str:
        return (
            f"on {self.clips} evaluation clips: max logit difference "
            f"{self.max_logit_difference:.2g}, max probability difference "
            f"{self.max_probability_difference:.2g}, "
            f"{'same labels' if self.same_labels else 'DIFFERENT labels'}"
        )


def evaluation_dir(model_dir: Path, manifest: ModelManifest) -> Path:
    """The committed clips of the task: ``<store>/_evaluation/<task>``."""
    return model_dir.parent.parent / "_evaluation" / manifest.task


def export(source_dir: Path, out_dir: Path | None = None) -> ModelManifest:
    """Export the torch model in ``source_dir`` to ``out_dir``, proven; its manifest."""
    out_dir = out_dir or source_dir
    source = read_manifest(source_dir / "manifest.json")
    if source.framework != TorchAudioRuntime.framework:
        raise PackagingError(f"{source.ref} is a {source.framework} model, not torch-audio")
    reference = TorchAudioRuntime(source, source_dir)
    reference.load()
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch)
        shutil.copy2(reference.artifact_path, staging / source.artifact)
        _export_graph(reference, staging / ONNX_ARTIFACT)
        filterbank = features.mel_filterbank(reference.input.sample_rate, reference.params)
        np.save(staging / FILTERBANK_FILE, filterbank, allow_pickle=False)
        manifest = _served_manifest(source, staging, out_dir.name)
        served = OnnxAudioRuntime(manifest, staging)
        served.load()
        proof = prove(reference, served, evaluation_dir(source_dir, source))
        if not proof.holds:
            raise PackagingError(f"the ONNX export of {source.ref} differs {proof.describe()}")
        logger.info("exported %s: %s", source.ref, proof.describe())
        manifest = manifest.model_copy(update={"conversion": _conversion(source, proof)})
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in (source.artifact, ONNX_ARTIFACT, FILTERBANK_FILE):
            shutil.copy2(staging / name, out_dir / name)
    write_manifest(manifest, out_dir)
    return read_manifest(out_dir / "manifest.json")


def _export_graph(runtime: TorchAudioRuntime, path: Path) -> None:
    assert runtime.model is not None
    frames = 1 + int(round(runtime.input.clip_seconds * runtime.input.sample_rate)) // (
        runtime.params.hop_length
    )
    example = torch.zeros(1, runtime.params.n_mels, frames)
    with warnings.catch_warnings():
        # The TorchScript exporter: the torch.export one needs onnxscript, not in our stack.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            runtime.model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[_INPUT],
            output_names=[_OUTPUT],
            dynamic_axes={_INPUT: {0: "windows"}, _OUTPUT: {0: "windows"}},
        )


def _served_manifest(source: ModelManifest, folder: Path, version: str) -> ModelManifest:
    filterbank = HashedFile(file=FILTERBANK_FILE, sha256=sha256_file(folder / FILTERBANK_FILE))
    return source.model_copy(
        update={
            "version": version,
            "framework": OnnxAudioRuntime.framework,
            "artifact": ONNX_ARTIFACT,
            "sha256": sha256_file(folder / ONNX_ARTIFACT),
            "description": f"{source.description} Served by ONNX Runtime on log-mel computed "
            f"with numpy (exported from {source.artifact}).",
            "input": source.input.model_copy(update={"mel_filterbank": filterbank}),
            "created_at": datetime.now(timezone.utc),
            "manifest_sha256": None,
        }
    )


def _conversion(source: ModelManifest, proof: AudioProof) -> OnnxConversion:
    return OnnxConversion(
        source_artifact=source.artifact,
        source_sha256=source.sha256,
        converter=f"torch.onnx {torch.__version__} (TorchScript exporter, opset {OPSET})",
        precision="float",
        rows=proof.clips,
        max_probability_difference=proof.max_probability_difference,
        same_labels=proof.same_labels,
        max_logit_difference=proof.max_logit_difference,
    )


def prove(reference: TorchAudioRuntime, served: OnnxAudioRuntime, clips_dir: Path) -> AudioProof:
    """The served runtime against the torch one on every clip of ``clips_dir``."""
    samples = load_samples(reference.manifest, clips_dir, _MAX_CLIP_SECONDS)
    clips = [sample.instance for sample in samples]
    params, schema = reference.params, reference.input
    windows = np.concatenate(
        [
            features.log_mel(
                c.samples, c.sample_rate, schema.sample_rate, schema.clip_seconds, params
            )
            for c in clips
        ]
    )
    assert reference.model is not None
    with torch.inference_mode():
        torch_logits = reference.model(torch.from_numpy(windows)).numpy()
    onnx_logits = served.logits(windows)
    expected, actual = reference.predict(clips), served.predict(clips)
    labels = reference.labels
    difference = max(
        abs(e.probabilities[label] - a.probabilities[label])
        for e, a in zip(expected, actual, strict=True)
        for label in labels
    )
    return AudioProof(
        clips=len(clips),
        max_logit_difference=float(np.max(np.abs(torch_logits - onnx_logits))),
        max_probability_difference=float(difference),
        same_labels=[p.label for p in expected] == [p.label for p in actual],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a torch-audio model version folder")
    parser.add_argument("--out", type=Path, help="the folder to write (default: source)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = export(args.source, args.out)
    print(f"{manifest.ref}: {manifest.conversion}")


if __name__ == "__main__":
    main()
