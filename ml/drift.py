"""Reference profiles of a model's inputs and outputs, and the PSI of new data against them.

A profile is made at packaging from the rows the model was trained or proven on: each
numeric feature as a histogram (its bin edges and the fraction of rows in each bin), each
categorical feature as the fraction of each category, and the predicted labels' fractions.
The population stability index (PSI) of recent rows against it says how far they moved:
under 0.1 stable, 0.1 to 0.25 worth a look, above 0.25 drifted.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ml.manifest import NumericFeature, TabularInput, sha256_file

PROFILE_FILENAME = "reference_profile.json"
PSI_WARN = 0.1
PSI_ALERT = 0.25
_BINS = 10
# An empty bin on either side would make the PSI infinite: it counts as this fraction.
_FLOOR = 1e-4
# Values the reference never showed (an unseen category, a missing value) share one bucket.
OTHER = "__other__"


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericProfile(_Profile):
    type: Literal["numeric"] = "numeric"
    edges: list[float]
    """Inner bin edges: bin i holds edges[i-1] <= x < edges[i], open at both ends."""
    fractions: list[float]
    """len(edges) + 1 fractions, then the fraction of missing values."""


class CategoricalProfile(_Profile):
    type: Literal["categorical"] = "categorical"
    fractions: dict[str, float]
    """Each category's fraction; ``OTHER`` for missing and unseen values."""


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="type")]


class ReferenceProfile(_Profile):
    rows: int = Field(gt=0)
    """How many rows the profile was made from."""
    source: str
    """Where those rows came from (the sample given to packaging, the training split...)."""
    features: dict[str, FeatureProfile]
    labels: dict[str, float]
    """The fraction of rows predicted as each label."""


def build_profile(
    schema: TabularInput,
    rows: Sequence[Mapping[str, Any]],
    predicted_labels: Sequence[str],
    source: str,
) -> ReferenceProfile:
    """The profile of ``rows`` (feature name to value) and the labels predicted for them."""
    features: dict[str, FeatureProfile] = {}
    for feature in schema.features:
        values = [row.get(feature.name) for row in rows]
        if isinstance(feature, NumericFeature):
            edges = _quantile_edges([float(v) for v in values if v is not None])
            features[feature.name] = NumericProfile(
                edges=edges, fractions=_numeric_fractions(edges, values)
            )
        else:
            features[feature.name] = CategoricalProfile(
                fractions=_frequencies(str(v) if v is not None else OTHER for v in values)
            )
    return ReferenceProfile(
        rows=len(rows), source=source, features=features, labels=_frequencies(predicted_labels)
    )


def feature_psi(profile: FeatureProfile, values: Sequence[Any]) -> float:
    """The PSI of ``values`` against one feature's reference distribution."""
    if isinstance(profile, NumericProfile):
        return psi(profile.fractions, _numeric_fractions(profile.edges, values))
    return labels_psi(profile.fractions, (OTHER if v is None else str(v) for v in values))


def labels_psi(reference: Mapping[str, float], observed: Iterable[str]) -> float:
    """The PSI of observed categories (or labels) against reference fractions."""
    keys = list(reference)
    counts = Counter(value if value in reference else OTHER for value in observed)
    if OTHER not in reference and counts[OTHER]:
        keys.append(OTHER)
    total = sum(counts.values())
    return psi(
        [reference.get(key, 0.0) for key in keys],
        [counts[key] / total if total else 0.0 for key in keys],
    )


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """sum((a - e) * ln(a / e)) over the bins, an empty bin counting as ``_FLOOR``."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, _FLOOR), max(a, _FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def write_profile(profile: ReferenceProfile, model_dir: Path) -> str:
    """Write the profile beside the manifest; its sha256, which the manifest records."""
    path = model_dir / PROFILE_FILENAME
    path.write_text(profile.model_dump_json(indent=1) + "\n", encoding="utf-8")
    return sha256_file(path)


def read_profile(path: Path, sha256: str) -> ReferenceProfile:
    """The profile at ``path``; ``ValueError`` when it is not the file the manifest sealed."""
    actual = sha256_file(path)
    if actual != sha256:
        raise ValueError(f"{path.name} has sha256 {actual}, the manifest says {sha256}")
    return ReferenceProfile.model_validate(json.loads(path.read_text(encoding="utf-8")))


def _quantile_edges(values: list[float]) -> list[float]:
    # Deciles of the reference, deduplicated: a feature of few values (JobLevel 1 to 5) gets
    # one bin per value rather than empty ones.
    if not values:
        return []
    ordered = sorted(values)
    last = len(ordered) - 1
    edges = {ordered[round(last * step / _BINS)] for step in range(1, _BINS)}
    return sorted(edge for edge in edges if edge > ordered[0])


def _numeric_fractions(edges: list[float], values: Sequence[Any]) -> list[float]:
    counts = [0] * (len(edges) + 2)  # the bins, then missing values
    for value in values:
        if value is None:
            counts[-1] += 1
        else:
            counts[bisect.bisect_right(edges, float(value))] += 1
    total = len(values)
    return [count / total if total else 0.0 for count in counts]


def _frequencies(values: Iterable[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values())
    return {key: count / total for key, count in sorted(counts.items())}
