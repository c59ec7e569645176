"""What an ONNX file given to ``python -m registry add`` says of itself: its class labels."""

from __future__ import annotations

from pathlib import Path

import onnx

from ml.packaging.errors import PackagingError

# The ONNX-ML classifiers (TreeEnsembleClassifier, LinearClassifier, SVMClassifier, ...) and
# ZipMap name their classes in one of these attributes, in the order of the probabilities.
_LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s")


def onnx_class_labels(path: Path) -> list[str] | None:
    """The class labels that the graph's classifier names, or None when none does."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError, an OSError, ...
        raise PackagingError(f"cannot read ONNX file {path}: {error}") from error
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name in _LABEL_ATTRIBUTES:
                values = onnx.helper.get_attribute_value(attribute)
                return [
                    value.decode() if isinstance(value, bytes) else str(value) for value in values
                ]
    return None
