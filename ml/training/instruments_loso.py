"""Honest evaluation of the instrument CNN: leave one source family out, calibrate, abstain.

For each family of near-identical sources (FluidR3 GM/GS/mono, the three MuseScore files,
OPL-3, STK, sonic-pi, this project's synthesis) a CNN is trained on every other family and
measured on that one: its accuracy is what a sample set never heard is likely to get.
The held-out logits of all folds also choose, without ever looking at the fold they are
applied to, the temperature that calibrates the probabilities (fold k's expected
calibration error uses a temperature fitted on the other folds only) and the abstention
threshold below which an answer would better be ``unknown``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ml.manifest import Evaluation
from ml.training.config import TrainConfig
from ml.training.instruments_data import ClipSet
from ml.training.instruments_metrics import evaluate
from ml.training.render_instruments import UNKNOWN, ClipRecord

logger = logging.getLogger(__name__)

ECE_BINS = 15
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 121))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    probabilities = softmax(logits, temperature)[np.arange(len(targets)), targets]
    return float(-np.mean(np.log(np.maximum(probabilities, 1e-12))))


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature of least negative log-likelihood (a grid: one parameter)."""
    if not len(targets):
        return 1.0
    losses = [nll(logits, targets, float(t)) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def expected_calibration_error(
    probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their size."""
    if not len(targets):
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def abstain(probabilities: np.ndarray, threshold: float, unknown: int | None) -> np.ndarray:
    """Argmax, except ``unknown`` where the top probability is below ``threshold``."""
    predicted = probabilities.argmax(axis=1)
    if unknown is not None and threshold > 0:
        predicted = np.where(probabilities.max(axis=1) < threshold, unknown, predicted)
    return predicted


def choose_threshold(
    probabilities: np.ndarray, targets: np.ndarray, unknown: int | None
) -> tuple[float, float]:
    """The abstention threshold of best balanced accuracy (mean per-class recall) over the
    held-out predictions; 0 when abstaining never helps. Returns (threshold, that accuracy)."""
    if unknown is None or not len(targets):
        return 0.0, 0.0
    best = (0.0, _balanced_accuracy(probabilities.argmax(axis=1), targets))
    for threshold in np.linspace(0.3, 0.95, 27):
        score = _balanced_accuracy(abstain(probabilities, float(threshold), unknown), targets)
        if score > best[1] + 1e-9:
            best = (float(threshold), score)
    return best


def _balanced_accuracy(predicted: np.ndarray, targets: np.ndarray) -> float:
    recalls = [np.mean(predicted[targets == c] == c) for c in np.unique(targets)]
    return float(np.mean(recalls))


@dataclass
class Fold:
    family: str
    records: list[ClipRecord]
    targets: np.ndarray
    logits: np.ndarray
    train_clips: int
    seconds: float


@dataclass
class LosoResult:
    folds: list[Fold]
    labels: list[str]
    temperature: float
    threshold: float
    evaluations: list[Evaluation] = field(default_factory=list)
    """The pooled evaluation (``loso``, whose metrics are ``summary``), then one per fold."""
    summary: dict[str, float] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        """Every fold's held-out logits, targets and clip files: the figures can be recomputed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"labels": np.array(self.labels)}
        for fold in self.folds:
            arrays[f"{fold.family}.logits"] = fold.logits
            arrays[f"{fold.family}.targets"] = fold.targets
            arrays[f"{fold.family}.files"] = np.array([r.file for r in fold.records])
        np.savez(path, **arrays)
        return path


def families_of(records: Sequence[ClipRecord]) -> list[str]:
    """The families that hold instrument clips (those an instrument fold can be measured on)."""
    return sorted({r.source_family for r in records if r.label != UNKNOWN})


def run_folds(
    clips: ClipSet, labels: Sequence[str], config: TrainConfig, families: Sequence[str]
) -> list[Fold]:
    """Train one CNN per family on every other family; its logits on that family's clips."""
    from ml.training.instruments_cnn import predict_logits, train_cnn

    fold_config = replace(config, epochs=config.loso_epochs or config.epochs)
    of_family = np.array([r.source_family for r in clips.records])
    folds = []
    for number, family in enumerate(families, start=1):
        started = time.perf_counter()
        held = of_family == family
        train = ClipSet(
            clips.root,
            [r for r, h in zip(clips.records, held, strict=True) if not h],
            clips.power[~held],
            clips.targets[~held],
        )
        logger.info(
            "fold %d/%d: without %s (%d clips), training on %d",
            number,
            len(families),
            family,
            int(held.sum()),
            len(train.targets),
        )
        model, _ = train_cnn(train, len(labels), fold_config)
        logits = predict_logits(model, clips.power[held], fold_config)
        folds.append(
            Fold(
                family=family,
                records=[r for r, h in zip(clips.records, held, strict=True) if h],
                targets=clips.targets[held],
                logits=logits,
                train_clips=len(train.targets),
                seconds=time.perf_counter() - started,
            )
        )
        accuracy = float(np.mean(logits.argmax(axis=1) == clips.targets[held]))
        logger.info("fold %s: held-out accuracy %.4f", family, accuracy)
    return folds


def summarise(folds: Sequence[Fold], labels: Sequence[str]) -> LosoResult:
    """Per-fold evaluations with calibration chosen on the other folds; overall figures."""
    unknown = labels.index(UNKNOWN) if UNKNOWN in labels else None
    evaluations, accuracies, instrument_accuracies, eces = [], [], [], []
    for fold in folds:
        others = [f for f in folds if f is not fold]
        temperature = fit_temperature(
            np.concatenate([f.logits for f in others]) if others else fold.logits[:0],
            np.concatenate([f.targets for f in others]) if others else fold.targets[:0],
        )
        probabilities = softmax(fold.logits, temperature)
        predicted = probabilities.argmax(axis=1)
        is_instrument = (
            fold.targets != unknown
            if unknown is not None
            else np.ones_like(fold.targets, dtype=bool)
        )
        evaluation = evaluate(
            predicted,
            fold.targets,
            labels,
            f"loso/{fold.family}",
            f"leave-one-source-out: every clip of the {fold.family} family, by a CNN trained "
            f"on the other families only ({fold.train_clips} clips)",
        )
        metrics = dict(evaluation.metrics)
        instrument_accuracy = float(
            np.mean(predicted[is_instrument] == fold.targets[is_instrument])
        )
        metrics["instrument_accuracy"] = round(instrument_accuracy, 4)
        metrics["ece"] = round(expected_calibration_error(probabilities, fold.targets), 4)
        metrics["ece_uncalibrated"] = round(
            expected_calibration_error(softmax(fold.logits), fold.targets), 4
        )
        metrics["temperature"] = round(temperature, 4)
        if unknown is not None:
            if (~is_instrument).any():
                metrics["unknown_recall"] = round(
                    float(np.mean(predicted[~is_instrument] == unknown)), 4
                )
            metrics["false_unknown_rate"] = round(
                float(np.mean(predicted[is_instrument] == unknown)), 4
            )
        evaluations.append(evaluation.model_copy(update={"metrics": metrics}))
        accuracies.append(metrics["accuracy"])
        instrument_accuracies.append(instrument_accuracy)
        eces.append(metrics["ece"])
    logits = np.concatenate([f.logits for f in folds])
    targets = np.concatenate([f.targets for f in folds])
    temperature = fit_temperature(logits, targets)
    probabilities = softmax(logits, temperature)
    threshold, balanced = choose_threshold(probabilities, targets, unknown)
    pooled = evaluate(
        probabilities.argmax(axis=1),
        targets,
        labels,
        "loso",
        "leave-one-source-out, pooled: every clip of every family ("
        + ", ".join(f.family for f in folds)
        + "), each by the CNN trained without its family",
    )
    summary = {
        **pooled.metrics,
        "loso_min_accuracy": round(min(accuracies), 4),
        "loso_mean_accuracy": round(float(np.mean(accuracies)), 4),
        "loso_min_instrument_accuracy": round(min(instrument_accuracies), 4),
        "loso_mean_instrument_accuracy": round(float(np.mean(instrument_accuracies)), 4),
        "loso_pooled_accuracy": round(float(np.mean(probabilities.argmax(axis=1) == targets)), 4),
        "loso_mean_ece": round(float(np.mean(eces)), 4),
        "loso_pooled_ece": round(expected_calibration_error(probabilities, targets), 4),
        "temperature": round(temperature, 4),
    }
    if unknown is not None:
        summary["abstention_threshold"] = round(threshold, 4)
        summary["loso_balanced_accuracy_with_abstention"] = round(balanced, 4)
    pooled = pooled.model_copy(update={"metrics": summary})
    return LosoResult(
        list(folds), list(labels), temperature, threshold, [pooled, *evaluations], summary
    )


def report(result: LosoResult) -> str:
    """The table the training prints: one line per held-out family, then the summary."""
    lines = [
        "leave-one-source-out (trained without the family, measured on it):",
        f"  {'family':<12}{'clips':>7}{'accuracy':>10}{'instr.':>8}{'unknown':>9}"
        f"{'ECE':>7}{'ECE raw':>9}{'T':>6}",
    ]
    for fold, evaluation in zip(result.folds, result.evaluations[1:], strict=True):
        m = evaluation.metrics
        unknown = f"{m['unknown_recall']:.3f}" if "unknown_recall" in m else "-"
        lines.append(
            f"  {fold.family:<12}{evaluation.samples:>7}{m['accuracy']:>10.4f}"
            f"{m['instrument_accuracy']:>8.4f}{unknown:>9}{m['ece']:>7.3f}"
            f"{m['ece_uncalibrated']:>9.3f}{m['temperature']:>6.2f}"
        )
    lines.append("  " + ", ".join(f"{k}={v}" for k, v in result.summary.items()))
    return "\n".join(lines)
