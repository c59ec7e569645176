"""Train the instrument-recognition models on clips rendered by ``render_data``.

    python -m ml.training.render_data --out data/instruments
    python -m ml.training.instruments --data data/instruments --models-dir models

Every source of the data set (seven soundfonts in three families, STK, sonic-pi, this
project's synthesis) and the ``unknown`` clips are read once into a feature cache
(``instruments_cache``: each clip as rendered and as recorded copies). Then:

1. leave-one-source-out (``instruments_loso``): per source family, a CNN trained without
   it and measured on it; the folds' held-out logits choose the temperature that
   calibrates the probabilities and the abstention threshold;
2. the final CNN, trained on every family minus every 5th semitone of each instrument's
   range (held out, and measured), calibrated with that temperature, exported to ONNX.

The manifest records every fold's figures (``evaluations``, ``training.cross_validation``)
and the training report prints them. ``--no-loso`` skips step 1 (no calibration then).
The MFCC baseline (``--mfcc``) trains on the same clips.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ml.manifest import (
    AudioInput,
    CompiledModel,
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
from ml.training.instruments_cache import load_features
from ml.training.instruments_data import (
    ClipSet,
    Split,
    evaluation_set_records,
    is_heldout,
    write_evaluation_set,
)
from ml.training.instruments_loso import (
    LosoResult,
    expected_calibration_error,
    families_of,
    report,
    run_folds,
    softmax,
    summarise,
)
from ml.training.instruments_metrics import evaluate, evaluate_committed_set
from ml.training.render_instruments import (
    LABELS,
    SAMPLE_RATE,
    UNKNOWN,
    ClipRecord,
    read_index,
)

logger = logging.getLogger(__name__)

TASK = "instrument-recognition"
EVALUATION_DIR = Path("_evaluation") / TASK
AUDIO_FORMATS = ["wav", "flac", "ogg", "mp3"]
CLIP_SECONDS = 2.0
RENDER_SCRIPT = "ml/training/render_data.py"
HELDOUT_PITCHES = "../data/instruments (held-out pitches)"
DATA_SOURCES = (
    "Debian fluid-soundfont-gm, fluid-soundfont-gs, fluidr3mono-gm-soundfont, "
    "musescore-general-soundfont(-small, -lossless), opl3-soundfont (FluidSynth), stk "
    "(stk-demo), sonic-pi-samples, espeak-ng speech and this project's synthesis"
)


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
    compiled: CompiledModel | None = None
    """The exact, pickle-free form that serving reads instead of the artifact."""


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


def split_heldout_pitches(clips: ClipSet, every: int, labels: Sequence[str]) -> Split:
    """Train on every clip but the held-out pitches of each instrument, from every source;
    ``unknown`` clips have no pitch and are all trained on (the folds hold them out)."""
    held = np.array([is_heldout(r, every) for r in clips.records], dtype=bool)

    def part(mask: np.ndarray) -> ClipSet:
        records = [r for r, m in zip(clips.records, mask, strict=True) if m]
        return ClipSet(clips.root, records, clips.power[mask], clips.targets[mask])

    return Split(list(labels), every, part(~held), part(held))


def heldout_evaluation(
    split: Split, predicted: np.ndarray, labels: Sequence[str], extra: dict[str, float]
) -> Evaluation:
    sources = sorted({r.soundfont for r in split.heldout.records})
    evaluation = evaluate(
        predicted,
        split.heldout.targets,
        labels,
        HELDOUT_PITCHES,
        f"held-out pitches (every {split.heldout_every}th semitone of each range, all "
        f"velocities and expressions) of every source ({', '.join(sources)}), never "
        "trained on",
    )
    return evaluation.model_copy(update={"metrics": {**evaluation.metrics, **extra}})


def headline(evaluations_: Sequence[Evaluation], loso: LosoResult | None) -> dict[str, float]:
    heldout = evaluations_[0]
    if loso is None:
        return dict(heldout.metrics)
    # The headline is generalisation to sounds not trained on, the held-out source families:
    # exactly the figures of the pooled leave-one-source-out evaluation, which names its set.
    return dict(loso.summary)


def cross_validation(loso: LosoResult | None) -> dict[str, float]:
    """Each fold's figures, by family: what MLflow logs as ``cv_*``."""
    if loso is None:
        return {}
    figures = {}
    for fold, evaluation in zip(loso.folds, loso.evaluations[1:], strict=True):
        for key in ("accuracy", "instrument_accuracy", "ece", "unknown_recall"):
            if key in evaluation.metrics:
                figures[f"loso_{fold.family}_{key}"] = evaluation.metrics[key]
    return figures


def build_manifest(
    trained: Trained,
    model_dir: Path,
    config: TrainConfig,
    split: Split,
    evaluations_: list[Evaluation],
    labels: Sequence[str],
    loso: LosoResult | None = None,
) -> ModelManifest:
    sources = sorted({r.soundfont for r in split.train.records})
    return ModelManifest(
        name=trained.name,
        version=config.version,
        task=TASK,
        framework=trained.framework,
        description=trained.description,
        artifact=trained.artifact,
        sha256=sha256_file(model_dir / trained.artifact),
        compiled=trained.compiled,
        architecture=trained.architecture,
        input=audio_input(config),
        output=OutputSchema(labels=list(labels)),
        metrics=headline(evaluations_, loso),
        evaluations=evaluations_,
        training=Training(
            data=TrainingData(
                source=f"{DATA_SOURCES}, rendered by {RENDER_SCRIPT}: sources "
                f"{', '.join(sources)}, minus held-out pitches",
                sha256=data_sha256(split.train),
                rows=len(split.train.targets),
            ),
            code="ml/training/instruments.py",
            parameters={**trained.parameters, "training_seconds": round(trained.seconds, 1)},
            cross_validation=cross_validation(loso),
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
    labels: Sequence[str],
    loso: LosoResult | None = None,
) -> ModelManifest:
    """Write the manifest; add the committed set's evaluation, measured through the runtime.

    The manifest returned is the one written, read back: sealed with its digest.
    """
    manifest = build_manifest(trained, model_dir, config, split, evals, labels, loso)
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
    split: Split,
    config: TrainConfig,
    model_dir: Path,
    labels: Sequence[str],
    loso: LosoResult | None,
) -> tuple[Trained, list[Evaluation]]:
    import torch

    from ml.training.instruments_cnn import predict_logits, train_cnn

    started = time.perf_counter()
    model, history = train_cnn(split.train, len(labels), config)
    seconds = time.perf_counter() - started
    temperature = loso.temperature if loso is not None else 1.0
    model.temperature = temperature
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "model.pt")
    evals = []
    if len(split.heldout.targets):
        logits = predict_logits(model, split.heldout.power, config)  # calibrated already
        extra = {
            "ece": round(expected_calibration_error(softmax(logits), split.heldout.targets), 4)
        }
        evals.append(heldout_evaluation(split, logits.argmax(axis=1), labels, extra))
    if loso is not None:
        evals.extend(loso.evaluations)
    trained = Trained(
        name=config.cnn_name,
        framework="torch-audio",
        artifact="model.pt",
        architecture="ml.audio_cnn:InstrumentCNN",
        description="Small CNN on log-mel spectrograms, trained on every source family "
        "(seven soundfonts, STK physical models, sonic-pi samples, own synthesis) with an "
        "'unknown' class (drums, noise, speech), on clips passed through rooms, microphones, "
        "compressors and noise, then augmented (onset shift, time stretch, pitch and timbre "
        "shifts, SpecAugment); calibrated by a temperature chosen on held-out sources.",
        parameters={
            "architecture_kwargs": {
                "channels": list(config.channels),
                "temperature": round(temperature, 4),
            },
            "epochs": config.epochs,
            "epoch_size": config.epoch_size or len(split.train.targets),
            "loso_epochs": config.loso_epochs or config.epochs,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "weight_decay": config.weight_decay,
            "optimizer": "AdamW, one-cycle schedule",
            "class_balance": "balanced sampling",
            "cache_copies": config.copies,
            "augmentation": asdict(config.augment),
            "seed": config.seed,
            "max_clips": config.max_clips,
            "families": sorted({r.source_family for r in split.train.records}),
            "abstention_threshold": round(loso.threshold, 4) if loso is not None else None,
            "parameters": history["parameters"],
            "final_train_loss": history["loss"][-1],
        },
        seconds=seconds,
    )
    return trained, evals


def train_mfcc_model(
    split: Split,
    config: TrainConfig,
    model_dir: Path,
    labels: Sequence[str],
    loso: LosoResult | None,
) -> tuple[Trained, list[Evaluation]]:
    import joblib

    from ml.packaging.compile_softmax import write_proven_form
    from ml.training.instruments_mfcc import mfcc_inputs, predict_mfcc, train_mfcc

    clean = replace(split, train=_clean(split.train), heldout=_clean(split.heldout))
    started = time.perf_counter()
    classifier, parameters = train_mfcc(clean.train, labels, config)
    seconds = time.perf_counter() - started
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(classifier, model_dir / "model.joblib")
    # Evaluated and proven on the held-out clips (the form on the training ones when none is
    # held out), their features computed once.
    held_out = len(clean.heldout.targets) > 0
    inputs = mfcc_inputs(clean.heldout if held_out else clean.train, config)
    compiled = write_proven_form(classifier, inputs, model_dir, "model.compiled.json")
    evals = []
    if held_out:
        predicted = predict_mfcc(classifier, inputs, labels)
        evals.append(heldout_evaluation(clean, predicted, labels, {}))
    trained = Trained(
        name=config.mfcc_name,
        framework="sklearn-audio",
        artifact="model.joblib",
        architecture=None,
        description="Logistic regression on MFCC, delta and envelope statistics of the "
        "log-mel spectrogram: the simple baseline the CNN is compared with.",
        parameters=parameters,
        seconds=seconds,
        compiled=compiled,
    )
    return trained, evals


def _clean(clips: ClipSet) -> ClipSet:
    power = clips.power[:, 0] if clips.power.ndim == 4 else clips.power
    return ClipSet(clips.root, clips.records, power, clips.targets)


def subset(records: Sequence[ClipRecord], max_clips: int, seed: int) -> list[ClipRecord]:
    """At most ``max_clips`` records, a random sample (in index order) of every source."""
    if not max_clips or len(records) <= max_clips:
        return list(records)
    chosen = np.sort(np.random.default_rng(seed).permutation(len(records))[:max_clips])
    return [records[i] for i in chosen]


def index_frame(records: Sequence[ClipRecord]) -> pd.DataFrame:
    """The training clips as rows (what MLflow records as the run's dataset)."""
    return pd.DataFrame(
        [
            {"file": r.file, "label": r.label, "source": r.soundfont, "family": r.source_family}
            for r in records
        ]
    )


def compare_with_previous(
    previous_dir: Path, clips: ClipSet, labels: Sequence[str], config: TrainConfig
) -> dict[str, float]:
    """A previous torch-audio version's accuracy on each family's instrument clips (it has
    no ``unknown`` class): what the new version's held-out figures are compared with."""
    import torch

    from ml.audio_cnn import InstrumentCNN
    from ml.training.instruments_cnn import predict_logits

    manifest = read_manifest(previous_dir / "manifest.json")
    source = manifest.conversion.source_artifact if manifest.conversion else manifest.artifact
    kwargs = dict(manifest.training.parameters.get("architecture_kwargs", {}))
    old_labels = list(manifest.output.labels)
    model = InstrumentCNN(len(old_labels), **kwargs)
    model.load_state_dict(torch.load(previous_dir / source, weights_only=True))
    figures = {}
    of_family = np.array([r.source_family for r in clips.records])
    for family in sorted(set(of_family)):
        mask = (of_family == family) & np.array([r.label != UNKNOWN for r in clips.records])
        if not mask.any():
            continue
        predicted = predict_logits(model, clips.power[mask], config).argmax(axis=1)
        expected = np.array([old_labels.index(labels[t]) for t in clips.targets[mask]])
        figures[str(family)] = round(float(np.mean(predicted == expected)), 4)
    return figures


def run(
    data_dir: Path,
    models_dir: Path,
    config: TrainConfig,
    write_eval_set: bool = True,
    train_mfcc: bool = True,
    show_progress: bool = False,
    compare_with: Path | None = None,
) -> dict[str, ModelManifest]:
    """Load the rendered clips, evaluate by source, train, write the models and manifests."""
    started = time.perf_counter()
    records = subset(read_index(data_dir), config.max_clips, config.seed)
    labels = [label for label in LABELS if any(r.label == label for r in records)]
    index = {label: i for i, label in enumerate(labels)}
    cache = load_features(
        data_dir,
        records,
        config.features,
        config.copies,
        config.seed,
        show_progress=show_progress,
    )
    clips = ClipSet(
        data_dir, records, cache.power, np.array([index[r.label] for r in records], np.int64)
    )
    split = split_heldout_pitches(clips, config.heldout_every, labels)
    logger.info(
        "clips: %d train, %d held-out pitches (%.1f s)",
        len(split.train.targets),
        len(split.heldout.targets),
        time.perf_counter() - started,
    )
    loso = None
    families = families_of(records)
    if config.loso and len(families) > 1:
        loso = summarise(run_folds(clips, labels, config, families), labels)
        saved = loso.save(data_dir / "cache" / f"loso-{config.cnn_name}-{config.version}.npz")
        print(report(loso), flush=True)
        print(f"held-out logits of every fold: {saved}")
    committed_dir = models_dir / EVALUATION_DIR
    if write_eval_set:
        write_evaluation_set(
            data_dir,
            evaluation_set_records([r for r in split.heldout.records], labels),
            committed_dir,
        )
    manifests = {}
    trainers = [(config.cnn_name, train_cnn_model)]
    if train_mfcc:
        trainers.append((config.mfcc_name, train_mfcc_model))
    for name, trainer in trainers:
        model_dir = models_dir / name / config.version
        trained, evals = trainer(split, config, model_dir, labels, loso)
        if name == config.cnn_name and compare_with is not None:
            previous = compare_with_previous(compare_with, clips, labels, config)
            trained.parameters["previous_version_accuracy_by_family"] = {
                "model": str(compare_with),
                **previous,
            }
            print(f"{compare_with} on each family's instrument clips: {previous}")
        manifests[name] = publish(
            trained, model_dir, config, split, evals, committed_dir, labels, loso
        )
        if name == config.cnn_name:
            manifests[name] = export_served_form(model_dir)
        heldout = next((e for e in evals if e.dataset == HELDOUT_PITCHES), None)
        if heldout is not None:
            print(
                f"{manifests[name].ref} on held-out pitches ({heldout.samples} clips): "
                + ", ".join(f"{k}={v}" for k, v in heldout.metrics.items())
            )
        if tracking.tracking_enabled():
            tracking.track_training(
                manifests[name],
                model_dir,
                tracking.model_files(model_dir),
                inputs={"training": index_frame(split.train.records)},
                extra_metrics={
                    f"heldout_pitches_{k}": v
                    for k, v in (heldout.metrics if heldout else {}).items()
                },
            )
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
    parser.add_argument(
        "--loso-epochs",
        type=int,
        default=TrainConfig.loso_epochs,
        help="epochs of each fold's model (0: --epochs)",
    )
    parser.add_argument(
        "--epoch-size",
        type=int,
        default=TrainConfig.epoch_size,
        help="clips drawn per epoch (0: as many as there are)",
    )
    parser.add_argument(
        "--channels",
        default=",".join(str(c) for c in TrainConfig.channels),
        help="the CNN's channels per block, comma-separated",
    )
    parser.add_argument(
        "--max-clips", type=int, default=0, help="a random subset of this many clips (0: all)"
    )
    parser.add_argument("--version", default=TrainConfig.version)
    parser.add_argument("--no-loso", action="store_true", help="skip leave-one-source-out")
    parser.add_argument("--mfcc", action="store_true", help="train the MFCC baseline too")
    parser.add_argument(
        "--write-eval-set",
        action="store_true",
        help="rewrite the committed evaluation clips (models/_evaluation/instrument-recognition)",
    )
    parser.add_argument(
        "--compare-with", type=Path, help="a previous torch-audio version folder to compare with"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = TrainConfig(
        epochs=args.epochs,
        loso_epochs=args.loso_epochs,
        epoch_size=args.epoch_size,
        channels=tuple(int(c) for c in args.channels.split(",")),
        max_clips=args.max_clips,
        version=args.version,
        loso=not args.no_loso,
    )
    started = time.perf_counter()
    manifests = run(
        args.data,
        args.models_dir,
        config,
        write_eval_set=args.write_eval_set,
        train_mfcc=args.mfcc,
        show_progress=True,
        compare_with=args.compare_with,
    )
    for manifest in manifests.values():
        print(
            f"{manifest.ref}: "
            + ", ".join(f"{key}={value:.4f}" for key, value in manifest.metrics.items())
        )
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
