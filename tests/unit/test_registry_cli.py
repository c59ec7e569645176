"""``python -m registry list|show|validate`` on a store with good and bad models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.__main__ import main
from tests.helpers import copy_model


def test_list_and_show(attrition_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--models-dir", str(attrition_store), "list"]) == 0
    listing = capsys.readouterr().out
    assert "attrition-logreg" in listing and "roc_auc=" in listing
    assert main(["--models-dir", str(attrition_store), "show", "attrition-gbm@1"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "attrition-gbm"
    assert main(["--models-dir", str(attrition_store), "show", "nope"]) == 1


def test_list_names_the_data_set_of_each_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--models-dir", "models", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    # The headline accuracy is the other soundfont's, not the held-out pitches' 0.991.
    assert (
        "accuracy=0.795 on ../data/instruments/musescore (1078 samples)" in rows["instrument-mfcc"]
    )
    assert "on _evaluation/employee-attrition/heldout.csv (294 samples)" in rows["attrition-gbm"]


def test_validate_passes_on_the_committed_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--models-dir", "models", "validate"]) == 0
    assert "0 problems" in capsys.readouterr().out


def test_validate_fails_on_a_tampered_artifact_and_a_bad_manifest(
    attrition_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = copy_model(attrition_store, "attrition-gbm", as_version="2") / "model.joblib"
    artifact.write_bytes(b"not the model")
    (attrition_store / "junk" / "1").mkdir(parents=True)
    (attrition_store / "junk" / "1" / "manifest.json").write_text('{"name": "junk"}')
    assert main(["--models-dir", str(attrition_store), "validate"]) == 1
    output = capsys.readouterr().out
    assert "attrition-gbm@2: FAILED" in output and "refusing to load" in output
    assert "junk" in output and "2 problems" in output
