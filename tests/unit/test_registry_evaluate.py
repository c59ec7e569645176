"""``python -m registry evaluate``: a stored version scored on a labelled CSV, as the manifest's
metrics are, or a clear refusal with its exit code."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml.manifest import MANIFEST_FILENAME, read_manifest
from registry.__main__ import main
from tests.helpers import HELDOUT_CSV, MODELS_DIR, ROOT

TARGET = "Attrition"


def evaluate(capsys: pytest.CaptureFixture[str], *arguments: str | Path) -> tuple[int, str, str]:
    code = main(["evaluate", *map(str, arguments), "--models-dir", str(MODELS_DIR)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_rows(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def heldout_rows() -> tuple[list[dict[str, str]], list[str]]:
    with HELDOUT_CSV.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader), list(reader.fieldnames or [])


@pytest.mark.parametrize("name", ["attrition-logreg", "attrition-gbm"])
def test_a_bundled_version_on_its_heldout_rows_scores_what_its_manifest_recorded(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = evaluate(capsys, f"{name}@1", "--sample", HELDOUT_CSV, "--target", TARGET)

    assert code == 0, err
    result = json.loads(out)
    recorded = read_manifest(MODELS_DIR / name / "1" / MANIFEST_FILENAME)
    assert (result["model"], result["version"], result["samples"]) == (name, "1", 294)
    assert result["sample"] == str(HELDOUT_CSV)
    assert set(result["metrics"]) == {"roc_auc", "f1", "precision", "recall", "accuracy"}
    for metric, value in result["metrics"].items():
        assert value == pytest.approx(recorded.metrics[metric], abs=1e-12), metric


def test_other_rows_give_other_scores_and_their_count(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows, columns = heldout_rows()
    sample = write_rows(tmp_path / "half.csv", rows[:150], columns)

    code, out, err = evaluate(capsys, "attrition-logreg@1", "--sample", sample, "--target", TARGET)

    assert code == 0, err
    result = json.loads(out)
    assert result["samples"] == 150
    recorded = read_manifest(MODELS_DIR / "attrition-logreg" / "1" / MANIFEST_FILENAME).metrics[
        "roc_auc"
    ]
    assert result["metrics"]["roc_auc"] != pytest.approx(recorded, abs=1e-9)


def test_a_sample_without_the_target_column_is_refused_with_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows, columns = heldout_rows()
    sample = write_rows(tmp_path / "unlabelled.csv", rows, [c for c in columns if c != TARGET])

    code, out, err = evaluate(capsys, "attrition-logreg@1", "--sample", sample, "--target", TARGET)

    assert code == 2
    assert out == ""
    assert f"has no column {TARGET!r}" in err


def test_a_feature_named_as_the_target_is_refused_with_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = evaluate(
        capsys, "attrition-logreg@1", "--sample", HELDOUT_CSV, "--target", "Age"
    )

    assert code == 2
    assert out == ""
    assert "the label column 'Age' must be its one column that is not a feature" in err
    assert f"those are [{TARGET!r}]" in err


def test_a_sample_missing_a_feature_column_is_refused_with_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows, columns = heldout_rows()
    sample = write_rows(tmp_path / "no-age.csv", rows, [c for c in columns if c != "Age"])

    code, _, err = evaluate(capsys, "attrition-logreg@1", "--sample", sample, "--target", TARGET)

    assert code == 2
    assert "lacks the feature columns ['Age']" in err


def test_an_invalid_reference_is_refused_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = evaluate(capsys, "Attrition!", "--sample", HELDOUT_CSV, "--target", TARGET)

    assert code == 2
    assert out == ""
    assert "invalid model reference 'Attrition!'" in err


def test_a_version_not_in_the_store_exits_with_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = evaluate(
        capsys, "attrition-logreg@9", "--sample", HELDOUT_CSV, "--target", TARGET
    )

    assert code == 1
    assert out == ""
    assert "no model 'attrition-logreg@9' in the store" in err


def test_the_command_prints_one_json_line() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry",
            "--models-dir",
            str(MODELS_DIR),
            "evaluate",
            "attrition-logreg@1",
            "--sample",
            str(HELDOUT_CSV),
            "--target",
            TARGET,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert json.loads(line)["samples"] == 294
