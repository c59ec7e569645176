"""Starting the app imports no torch, librosa, scikit-learn or PyJWT; serving a tabular or an
instrument answer, no torch or librosa."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import ROOT, attrition_example, run_python

_PROGRAM = """
import json, sys
from fastapi.testclient import TestClient
from api.main import create_app
from api.settings import Settings

settings = Settings(_env_file=None, env="dev", database_url=sys.argv[1], models_dir=sys.argv[2])
with TestClient(create_app(settings)) as client:
    startup_modules = set(sys.modules)
    reply = client.post("/predict", json={"features": json.loads(sys.argv[3])})
def roots(modules):
    return sorted({name.split(".")[0] for name in modules})

print(json.dumps({
    "status": reply.status_code,
    "model": reply.json().get("model"),
    "heavy_at_start": [
        m for m in roots(startup_modules) if m in {"torch", "librosa", "sklearn", "jwt"}
    ],
    "heavy_after": [m for m in roots(sys.modules) if m in {"torch", "librosa", "numba"}],
}))
"""


def test_tabular_serving_never_imports_torch_or_librosa(tmp_path: Path) -> None:
    result = run_python(
        _PROGRAM,
        f"sqlite:///{tmp_path / 'traces.db'}",
        str(ROOT / "models"),
        json.dumps(attrition_example()),
    )
    assert (result["status"], result["model"]) == (200, "attrition-logreg")
    # Start-up reads manifests only: not even scikit-learn is imported before a request.
    assert result["heavy_at_start"] == []
    assert result["heavy_after"] == []


_AUDIO_PROGRAM = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from api.main import create_app
from api.settings import Settings

settings = Settings(_env_file=None, env="dev", database_url=sys.argv[1], models_dir=sys.argv[2])
with TestClient(create_app(settings)) as client:
    clip = Path(sys.argv[3]).read_bytes()
    reply = client.post(f"/predict/{sys.argv[4]}", files={"file": ("clip.flac", clip)})
print(json.dumps({
    "status": reply.status_code,
    "served": [reply.json().get("model"), reply.json().get("version")],
    "heavy_after": sorted(
        {m.split(".")[0] for m in sys.modules} & {"torch", "librosa", "numba", "sklearn"}
    ),
}))
"""


# instrument-mfcc's features are numpy's, not librosa's (nor numba's); its scaler and
# logistic regression are served from their compiled form, without scikit-learn.
@pytest.mark.parametrize(("model", "version"), [("instrument-cnn", "3"), ("instrument-mfcc", "1")])
def test_the_instrument_models_are_served_without_torch_or_librosa(
    tmp_path: Path, model: str, version: str
) -> None:
    result = run_python(
        _AUDIO_PROGRAM,
        f"sqlite:///{tmp_path / 'traces.db'}",
        str(ROOT / "models"),
        str(ROOT / "models/_evaluation/instrument-recognition/violin-n070-v080.flac"),
        model,
    )
    assert (result["status"], result["served"]) == (200, [model, version])
    assert result["heavy_after"] == []
