"""Runtime of tabular scikit-learn models (framework "sklearn").

A model whose manifest carries a compiled form of a tabular kind (``manifest.compiled``) is
served from that JSON alone: a pure-Python scorer (``ml.linear_fastpath`` or
``ml.tree_fastpath``) that packaging proved equal to the pipeline's ``predict_proba`` on every
held-out row. Loading it
imports neither joblib, scikit-learn nor pandas, which keeps the server's start-up and memory
small.

Without one, the joblib pipeline is loaded and takes a DataFrame with the schema's column
names, one ``predict_proba`` call per batch. Compiling a pipeline is packaging's work
(``ml.packaging``), never the runtime's: serving reads compiled forms, it does not make them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ml.errors import ModelRuntimeError
from ml.labels import LabelRule
from ml.linear_fastpath import LINEAR_KIND, LinearScorer
from ml.manifest import CategoricalFeature, CompiledModel, ModelManifest, TabularInput
from ml.runtime import ModelRuntime, Prediction
from ml.tree_fastpath import TREE_KIND, TreeEnsembleScorer

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

Scorer = LinearScorer | TreeEnsembleScorer
SCORER_BY_KIND: dict[str, type[Scorer]] = {
    LINEAR_KIND: LinearScorer,
    TREE_KIND: TreeEnsembleScorer,
}

# A tree ensemble costs about 75 ns per split a row meets (CPython 3.11; attrition-gbm's
# 900 splits take 65-70 µs). Up to this many it stays under ~100 µs a row and may run on
# the event loop; a larger ensemble runs in the thread pool.
INLINE_MAX_SPLITS = 1_200


class SklearnRuntime(ModelRuntime):
    """A fitted classifier pipeline with ``predict_proba`` and ``classes_``."""

    framework: ClassVar[str] = "sklearn"

    def __init__(self, manifest: ModelManifest, model_dir: Path, device: str = "cpu") -> None:
        super().__init__(manifest, model_dir, device)
        if not isinstance(self.manifest.input, TabularInput):
            raise ModelRuntimeError(f"{self.manifest.ref}: the sklearn runtime needs tabular input")
        self.schema: TabularInput = self.manifest.input
        self.columns = [feature.name for feature in self.schema.features]
        self.labels = list(self.manifest.output.labels)
        self._pipeline: Any = None
        self._scorer: Scorer | None = None
        self._class_labels: list[str] = []  # the label of each predict_proba column
        self._decide = LabelRule(self.manifest.output).decide

    def load(self) -> None:
        started = time.perf_counter()
        compiled = self.manifest.compiled
        try:
            if compiled is not None:
                pipeline, scorer = None, self._compiled_scorer(compiled)
            else:
                pipeline, scorer = self._load_pipeline(), None
        except ModelRuntimeError:
            raise
        except Exception as error:  # a broken artifact is a model failure, whatever its kind
            raise ModelRuntimeError(f"{self.manifest.ref} failed to load: {error!r}") from error
        self._pipeline = pipeline
        self._scorer = scorer
        self.runs_inline = scorer is not None and _is_cheap(scorer)
        self.ready = True
        logger.info(
            "Loaded %s in %.3f s (%s)",
            self.manifest.ref,
            time.perf_counter() - started,
            f"compiled {compiled.kind} form" if compiled else "predict_proba",
        )

    def predict(self, instances: Sequence[Any]) -> list[Prediction]:
        """Predict validated feature dicts (the output of ``tabular_validator.validate``)."""
        if self._scorer is None and self._pipeline is None:
            raise ModelRuntimeError(f"{self.manifest.ref} is not loaded")
        try:
            if self._scorer is not None:
                return self._fast_predictions(self._scorer, instances)
            rows = self._batch_probabilities(instances)
        except Exception as error:  # the estimator's failures are the model's, not the input's
            raise ModelRuntimeError(f"{self.manifest.ref} failed to predict: {error!r}") from error
        return [self._prediction(probabilities) for probabilities in rows]

    def warm_up(self) -> None:
        self.predict(self._example_rows()[:1])

    def unload(self) -> None:
        self._pipeline = None
        self._scorer = None
        self.runs_inline = False
        super().unload()

    @property
    def uses_fast_path(self) -> bool:
        return self._scorer is not None

    def _compiled_scorer(self, compiled: CompiledModel) -> Scorer:
        """The scorer of the compiled JSON (its sha256 was checked with the artifact's)."""
        reader = SCORER_BY_KIND.get(compiled.kind)
        if reader is None:
            raise ModelRuntimeError(
                f"{self.manifest.ref}: a tabular model cannot be served from a "
                f"{compiled.kind} form (one of {', '.join(SCORER_BY_KIND)})"
            )
        text = (self.model_dir / compiled.artifact).read_text(encoding="utf-8")
        scorer = reader.from_dict(json.loads(text))
        classes = [scorer.negative_class, scorer.positive_class]
        if sorted(classes) != sorted(self.labels):
            raise ModelRuntimeError(
                f"{self.manifest.ref}: the compiled form predicts {classes}, "
                f"the manifest promises {self.labels}"
            )
        features = {feature.name: feature for feature in self.schema.features}
        for name, kind in scorer.features.items():
            feature = features.get(name)
            if feature is None or (kind == "category") != isinstance(feature, CategoricalFeature):
                raise ModelRuntimeError(
                    f"{self.manifest.ref}: the compiled form reads {name!r} as a {kind}, "
                    "which the input schema does not have"
                )
        self._class_labels = classes
        return scorer

    def _load_pipeline(self) -> Any:
        """The joblib pipeline, whose ``predict_proba`` computes the predictions."""
        import joblib  # only here: a compiled model is served without it

        pipeline = joblib.load(self.artifact_path)
        self._class_labels = self._check_classes(pipeline)
        return pipeline

    def _check_classes(self, pipeline: Any) -> list[str]:
        """Map the pipeline's classes to the manifest's labels; refuse a mismatch."""
        classes = [str(label) for label in getattr(pipeline, "classes_", [])]
        if sorted(classes) != sorted(self.labels) or not hasattr(pipeline, "predict_proba"):
            raise ModelRuntimeError(
                f"{self.manifest.ref}: the artifact predicts {classes}, "
                f"the manifest promises {self.labels}"
            )
        return classes

    def _example_rows(self) -> list[dict[str, object]]:
        assert self.tabular_validator is not None  # the input is tabular (checked in __init__)
        return self.tabular_validator.validate([self.schema.example])

    def _frame(self, rows: Sequence[Mapping[str, object]]) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame.from_records(rows, columns=self.columns)

    def _fast_predictions(
        self,
        scorer: Scorer,
        instances: Sequence[Mapping[str, object]],
    ) -> list[Prediction]:
        """Pure-Python predictions; the scorer's two classes are the manifest's two labels."""
        negative, positive = scorer.negative_class, scorer.positive_class
        negative_first = self.labels[0] == negative
        predictions = []
        for row in instances:
            p = scorer.positive_probability(row)
            # 1 - p, as predict_proba computes the other class of a binary model.
            probabilities = (
                {negative: 1.0 - p, positive: p}
                if negative_first
                else {positive: p, negative: 1.0 - p}
            )
            predictions.append(Prediction(self._decide(probabilities), probabilities))
        return predictions

    def _batch_probabilities(self, instances: Sequence[Mapping[str, object]]) -> list[list[float]]:
        """One list of probabilities per instance, in ``_class_labels`` order."""
        if not instances:
            return []
        # One DataFrame and one predict_proba call for the whole batch.
        rows: list[list[float]] = self._pipeline.predict_proba(self._frame(instances)).tolist()
        return rows

    def _prediction(self, class_probabilities: list[float]) -> Prediction:
        by_label = dict(zip(self._class_labels, class_probabilities, strict=True))
        probabilities = {label: float(by_label[label]) for label in self.labels}
        return Prediction(label=self._decide(probabilities), probabilities=probabilities)


def _is_cheap(scorer: Scorer) -> bool:
    """Whether one row costs microseconds, so that predictions may run on the event loop."""
    return isinstance(scorer, LinearScorer) or scorer.max_splits <= INLINE_MAX_SPLITS
