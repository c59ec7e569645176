"""Train the instrument-recognition models on clips rendered by ``render_instruments``.

    python -m ml.training.render_instruments --out data/instruments
    python -m ml.training.instruments --data data/instruments --models-dir models

Training uses the FluidR3 soundfont minus every 5th semitone of each instrument (held out).
Each model is evaluated on those held-out pitches and on every clip of the MuseScore
soundfont (other samples of the same instruments: the test of generalisation). Writes
``instrument-cnn`` (PyTorch state_dict) and ``instrument-mfcc`` (scikit-learn, joblib), and
the small committed evaluation set ``_evaluation/instrument-recognition``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ml.manifest import (
    AudioInput,
    Evaluation,
    ModelManifest,
    OutputSchema,
    Training,
    TrainingData,
    read_manifest,
    sha256_file,
    write_manifest,
)
from ml.training import tracking
from ml.training.config import TrainConfig
from ml.training.instruments_data import (
    ClipSet,
    Split,
    evaluation_set_records,
    load_clips,
    split_records,
    write_evaluation_set,
)
from ml.training.instruments_metrics import evaluate, evaluate_committed_set
from ml.training.render_instruments import (
    LABELS,
    SAMPLE_RATE,
    SOUNDFONTS,
    TRAIN_SOUNDFONT,
    VALIDATION_SOUNDFONT,
    read_index,
)

logger = logging.getLogger(__name__)

TASK = "instrument-recognition"
EVALUATION_DIR = Path("_evaluation") / TASK
AUDIO_FORMATS = ["wav", "flac", "ogg", "mp3"]
CLIP_SECONDS = 2.0
RENDER_SCRIPT = "ml/training/render_instruments.py"


@dataclass
class Trained:
    """What a trainer hands to the manifest writer."""

    name: str
    framework: str
    artifact: str
    architecture: str | None
    description: str
    parameters: dict
    seconds: float


def audio_input(config: TrainConfig) -> AudioInput:
    return AudioInput(
        sample_rate=SAMPLE_RATE,
        clip_seconds=CLIP_SECONDS,
        formats=AUDIO_FORMATS,
        features=config.features.as_manifest(),
    )


def data_sha256(clips: ClipSet) -> str:
    """sha256 over the training clips' relative paths and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for record in sorted(clips.records, key=lambda r: r.file):
        digest.update(record.file.encode())
        digest.update((clips.root / record.file).read_bytes())
    return digest.hexdigest()


def evaluations(split: Split, predict, labels: Sequence[str]) -> list[Evaluation]:
    """Held-out pitches of the training soundfont, then the whole validation soundfont."""
    sets = [
        (
            split.heldout,
            f"../data/instruments/{TRAIN_SOUNDFONT}",
            f"held-out pitches (every {split.heldout_every}th semitone of each range, all "
            f"velocities) of {SOUNDFONTS[TRAIN_SOUNDFONT].path.name}, never trained on",
        ),
        (
            split.validation,
            f"../data/instruments/{VALIDATION_SOUNDFONT}",
            f"every clip of {SOUNDFONTS[VALIDATION_SOUNDFONT].path.name}: other samples of the "
            "same instruments (generalisation across soundfonts)",
        ),
    ]
    return [
        evaluate(predict(clips), clips.targets, labels, dataset, description)
        for clips, dataset, description in sets
        if len(clips.targets)
    ]


def headline(evaluations_: Sequence[Evaluation]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for evaluation, prefix in zip(
        evaluations_, ("heldout_pitches", "other_soundfont"), strict=False
    ):
        metrics[f"{prefix}_accuracy"] = evaluation.metrics["accuracy"]
        metrics[f"{prefix}_macro_f1"] = evaluation.metrics["macro_f1"]
    if evaluations_:
        # The headline is generalisation to sounds not trained on: the other soundfont.
        metrics["accuracy"] = evaluations_[-1].metrics["accuracy"]
        metrics["macro_f1"] = evaluations_[-1].metrics["macro_f1"]
    return metrics


def build_manifest(
    trained: Trained,
    model_dir: Path,
    config: TrainConfig,
    split: Split,
    evaluations_: list[Evaluation],
) -> ModelManifest:
    return ModelManifest(
        name=trained.name,
        version=config.version,
        task=TASK,
        framework=trained.framework,
        description=trained.description,
        artifact=trained.artifact,
        sha256=sha256_file(model_dir / trained.artifact),
        architecture=trained.architecture,
        input=audio_input(config),
        output=OutputSchema(labels=list(split.labels)),
        metrics=headline(evaluations_),
        evaluations=evaluations_,
        training=Training(
            data=TrainingData(
                source=f"{SOUNDFONTS[TRAIN_SOUNDFONT].path} (Debian "
                f"{SOUNDFONTS[TRAIN_SOUNDFONT].package}) rendered by {RENDER_SCRIPT}, "
                f"minus held-out pitches",
                sha256=data_sha256(split.train),
                rows=len(split.train.targets),
            ),
            code="ml/training/instruments.py",
            parameters={**trained.parameters, "training_seconds": round(trained.seconds, 1)},
        ),
        created_at=datetime.now(timezone.utc),
    )


def publish(
    trained: Trained,
    model_dir: Path,
    config: TrainConfig,
    split: Split,
    evals: list[Evaluation],
    committed_dir: Path | None,
) -> ModelManifest:
    """Write the manifest; add the committed set's evaluation, measured through the runtime.

    The manifest returned is the one written, read back: sealed with its digest.
    """
    manifest = build_manifest(trained, model_dir, config, split, evals)
    path = write_manifest(manifest, model_dir)
    if committed_dir is not None and (committed_dir / "labels.csv").exists():
        extra = evaluate_committed_set(
            manifest, model_dir, committed_dir, dataset=str(EVALUATION_DIR)
        )
        manifest = manifest.model_copy(update={"evaluations": [*evals, extra]})
        path = write_manifest(manifest, model_dir)
    manifest = read_manifest(path)
    logger.info("%s: %s", manifest.ref, manifest.metrics)
    return manifest


def train_cnn_model(
    split: Split, config: TrainConfig, model_dir: Path
) -> tuple[Trained, list[Evaluation]]:
    import torch

    from ml.training.instruments_cnn import predict_log_mel, train_cnn

    started = time.perf_counter()
    model, history = train_cnn(split.train, len(split.labels), config)
    seconds = time.perf_counter() - started
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "model.pt")
    evals = evaluations(split, lambda clips: predict_log_mel(model, clips, config), split.labels)
    trained = Trained(
        name=config.cnn_name,
        framework="torch-audio",
        artifact="model.pt",
        architecture="ml.audio_cnn:InstrumentCNN",
        description="Small CNN on log-mel spectrograms (librosa), trained with augmentation "
        "aimed at other recordings: onset shift, time stretch, pitch and timbre "
        "shifts, room reverb, noise, SpecAugment masks.",
        parameters={
            "architecture_kwargs": {"channels": list(config.channels)},
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "weight_decay": config.weight_decay,
            "optimizer": "AdamW, one-cycle schedule",
            "class_balance": "balanced sampling",
            "augmentation": asdict(config.augment),
            "seed": config.seed,
            "parameters": history["parameters"],
            "final_train_loss": history["loss"][-1],
        },
        seconds=seconds,
    )
    return trained, evals


def train_mfcc_model(
    split: Split, config: TrainConfig, model_dir: Path
) -> tuple[Trained, list[Evaluation]]:
    import joblib

    from ml.training.instruments_mfcc import predict_mfcc, train_mfcc

    started = time.perf_counter()
    classifier, parameters = train_mfcc(split.train, split.labels, config)
    seconds = time.perf_counter() - started
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(classifier, model_dir / "model.joblib")
    evals = evaluations(
        split, lambda clips: predict_mfcc(classifier, clips, split.labels, config), split.labels
    )
    trained = Trained(
        name=config.mfcc_name,
        framework="sklearn-audio",
        artifact="model.joblib",
        architecture=None,
        description="Logistic regression on MFCC, delta and envelope statistics of the "
        "log-mel spectrogram: the simple baseline the CNN is compared with.",
        parameters=parameters,
        seconds=seconds,
    )
    return trained, evals


def run(
    data_dir: Path,
    models_dir: Path,
    config: TrainConfig,
    write_eval_set: bool = True,
    train_mfcc: bool = True,
) -> dict[str, ModelManifest]:
    """Load the rendered clips, train both models, write them with their manifests."""
    started = time.perf_counter()
    records = read_index(data_dir)
    labels = [label for label in LABELS if any(r.label == label for r in records)]
    split = split_records(records, labels, config.heldout_every)
    split.load(lambda recs: load_clips(data_dir, recs, labels, config.features))
    logger.info(
        "clips: %d train, %d held-out pitches, %d other soundfont (%.1f s)",
        len(split.train.targets),
        len(split.heldout.targets),
        len(split.validation.targets),
        time.perf_counter() - started,
    )
    committed_dir = models_dir / EVALUATION_DIR
    if write_eval_set:
        write_evaluation_set(
            data_dir, evaluation_set_records(split.validation.records, labels), committed_dir
        )
    manifests = {}
    trainers = [(config.cnn_name, train_cnn_model)]
    if train_mfcc:
        trainers.append((config.mfcc_name, train_mfcc_model))
    for name, trainer in trainers:
        model_dir = models_dir / name / config.version
        trained, evals = trainer(split, config, model_dir)
        manifests[name] = publish(trained, model_dir, config, split, evals, committed_dir)
        if name == config.cnn_name:
            manifests[name] = export_served_form(model_dir)
        if tracking.tracking_enabled():
            tracking.track_training(manifests[name], model_dir, tracking.model_files(model_dir))
    return manifests


def export_served_form(model_dir: Path) -> ModelManifest:
    """The CNN as served: ONNX and numpy log-mel (framework onnx-audio), exported in place and
    proven on the committed clips; ``model.pt`` stays beside it as the source."""
    from ml.packaging.export_audio_onnx import export

    return export(model_dir)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/instruments"))
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--version", default=TrainConfig.version)
    parser.add_argument("--no-mfcc", action="store_true", help="train the CNN only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = TrainConfig(epochs=args.epochs, version=args.version)
    started = time.perf_counter()
    manifests = run(args.data, args.models_dir, config, train_mfcc=not args.no_mfcc)
    for manifest in manifests.values():
        print(
            f"{manifest.ref}: "
            + ", ".join(f"{key}={value:.4f}" for key, value in manifest.metrics.items())
        )
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
