"""The manifest's own digest (``manifest_sha256``): written at packaging, checked before a load.

One changed digit of ``decision_threshold`` flips answers without touching any artifact; the
digest makes such a manifest fail to load (the mocks of ENV=test too), and ``python -m registry
validate`` report it, as an artifact whose sha256 does not match.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ml.manifest import (
    MANIFEST_FILENAME,
    canonical_manifest_json,
    manifest_digest,
    read_manifest,
    write_manifest,
)
from registry.__main__ import main
from registry.catalogue import ModelStatus
from registry.errors import ManifestDigestError, ModelLoadError
from registry.factories import framework_runtimes, mock_runtimes
from registry.hashing import verify_artifact, verify_manifest
from registry.registry import ModelRegistry
from tests.factories import (
    make_manifest,
    rewrite_manifest,
    tamper_manifest,
    unseal_manifest,
    write_model,
)
from tests.helpers import MODELS_DIR, copy_model

COMMITTED = sorted(
    path.parent for path in MODELS_DIR.glob(f"*/*/{MANIFEST_FILENAME}") if path.parts[-3][0] != "_"
)


# --- the digest ------------------------------------------------------------------------


def test_write_then_read_round_trips_with_a_valid_digest(tmp_path: Path) -> None:
    manifest = make_manifest().model_copy(update={"manifest_sha256": None})

    write_manifest(manifest, tmp_path)
    read = read_manifest(tmp_path / MANIFEST_FILENAME)

    assert read.manifest_sha256 == manifest_digest(read) == manifest_digest(manifest)
    assert read.model_copy(update={"manifest_sha256": None}) == manifest
    verify_manifest(read)


def test_the_digest_is_stable_and_excludes_itself() -> None:
    manifest = make_manifest()
    digest = manifest_digest(manifest)

    assert manifest_digest(make_manifest()) == digest
    assert manifest_digest(manifest.model_copy(update={"manifest_sha256": "f" * 64})) == digest
    assert manifest_digest(manifest.model_copy(update={"manifest_sha256": None})) == digest
    assert b"manifest_sha256" not in canonical_manifest_json(manifest)
    assert manifest_digest(make_manifest(decision_threshold=0.6)) != digest


def test_the_digest_is_the_sha256_of_canonical_json() -> None:
    manifest = make_manifest(description="héllo, world")
    canonical = canonical_manifest_json(manifest)

    assert manifest_digest(manifest) == hashlib.sha256(canonical).hexdigest()
    content = json.loads(canonical)
    assert canonical == json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert content["description"] == "héllo, world" and content["output"]["decision_threshold"]


def test_the_digest_ignores_key_order_spacing_and_fields_at_their_default(tmp_path: Path) -> None:
    stored = write_model(tmp_path)
    path = stored.model_dir / MANIFEST_FILENAME
    content = json.loads(path.read_text())
    assert content["description"] == "" and content["architecture"] is None
    del content["description"], content["architecture"]  # as if written before they existed
    path.write_text(json.dumps(dict(reversed(content.items()))))

    verify_manifest(read_manifest(path))


def test_the_factories_write_valid_digests(tmp_path: Path) -> None:
    verify_manifest(make_manifest())
    stored = write_model(tmp_path, artifact=b"weights")
    verify_artifact(stored.manifest, stored.model_dir)
    verify_manifest(rewrite_manifest(stored.model_dir, description="changed"))
    verify_manifest(read_manifest(stored.model_dir / MANIFEST_FILENAME))


@pytest.mark.parametrize("model_dir", COMMITTED, ids=lambda path: path.parent.name)
def test_every_committed_manifest_carries_a_valid_digest(model_dir: Path) -> None:
    manifest = read_manifest(model_dir / MANIFEST_FILENAME)
    assert manifest.manifest_sha256 is not None
    verify_manifest(manifest)


# --- refused at load ---------------------------------------------------------------------


def test_tamper_manifest_changes_one_digit(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path, "attrition-logreg")
    before, after = tamper_manifest(model_dir)
    assert read_manifest(model_dir / MANIFEST_FILENAME).output.decision_threshold == after
    assert after != before and abs(after - before) <= 0.9


@pytest.mark.parametrize("runtimes", ["real", "mock"])
def test_a_changed_threshold_digit_fails_to_load_naming_the_digest(
    tmp_path: Path, runtimes: str
) -> None:
    store = tmp_path / "models"
    tamper_manifest(copy_model(store, "attrition-logreg"))
    factory = framework_runtimes("cpu") if runtimes == "real" else mock_runtimes
    registry = ModelRegistry.from_dir(store, factory)
    entry = registry.resolve("attrition-logreg")

    with pytest.raises(ModelLoadError, match="manifest_sha256") as raised:
        registry.loader.load(entry)

    assert isinstance(raised.value.__cause__, ManifestDigestError)
    assert "attrition-logreg@1 was changed since it was written" in str(raised.value)
    assert entry.status is ModelStatus.FAILED and "manifest_sha256" in (entry.error or "")


@pytest.mark.parametrize("runtimes", ["real", "mock"])
def test_an_untouched_copy_loads(tmp_path: Path, runtimes: str) -> None:
    store = tmp_path / "models"
    copy_model(store, "attrition-logreg")
    copy_model(store, "attrition-gbm", as_version="2")  # renamed: rewritten and resealed
    factory = framework_runtimes("cpu") if runtimes == "real" else mock_runtimes
    registry = ModelRegistry.from_dir(store, factory)

    for ref in ("attrition-logreg", "attrition-gbm@2"):
        entry = registry.resolve(ref)
        registry.loader.load(entry)
        assert entry.status is ModelStatus.LOADED


def test_a_manifest_without_a_digest_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "models"
    unseal_manifest(copy_model(store, "attrition-logreg"))
    registry = ModelRegistry.from_dir(store, mock_runtimes)

    with pytest.raises(ModelLoadError, match=r"has no digest .*python -m registry seal"):
        registry.loader.load(registry.resolve("attrition-logreg"))


def test_a_tampered_manifest_cannot_vouch_for_a_replaced_artifact(tmp_path: Path) -> None:
    """Swap the pickle and edit its sha256 in the manifest by hand: still refused, unread."""
    model_dir = copy_model(tmp_path, "attrition-logreg")
    (model_dir / "model.joblib").write_bytes(b"another pickle")
    path = model_dir / MANIFEST_FILENAME
    text = path.read_text()
    recorded = read_manifest(path).sha256
    path.write_text(text.replace(recorded, hashlib.sha256(b"another pickle").hexdigest()))

    with pytest.raises(ManifestDigestError):
        verify_artifact(read_manifest(path), model_dir)


# --- python -m registry validate | seal --------------------------------------------------


def cli(store: Path, *args: str) -> int:
    return main(["--models-dir", str(store), *args])


def validate(store: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli(store, "validate")
    return code, capsys.readouterr().out


def test_validate_names_a_tampered_manifest(
    attrition_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper_manifest(attrition_store / "attrition-logreg" / "1")

    code, output = validate(attrition_store, capsys)

    assert code == 1
    assert "attrition-logreg@1: FAILED: manifest of attrition-logreg@1 was changed" in output
    assert "manifest_sha256" in output and "attrition-gbm@1: ok" in output
    assert "1 problems" in output


def test_validate_names_a_manifest_without_a_digest(
    attrition_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unseal_manifest(attrition_store / "attrition-gbm" / "1")

    code, output = validate(attrition_store, capsys)

    assert code == 1
    assert "attrition-gbm@1: FAILED: manifest of attrition-gbm@1 has no digest" in output


def test_seal_writes_the_missing_digests_only(
    attrition_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = attrition_store / "attrition-gbm" / "1"
    committed = (model_dir / MANIFEST_FILENAME).read_text()
    unseal_manifest(model_dir)

    assert cli(attrition_store, "seal") == 0
    output = capsys.readouterr().out

    assert "attrition-gbm@1: sealed" in output and "attrition-logreg@1: already sealed" in output
    assert (model_dir / MANIFEST_FILENAME).read_text() == committed
    assert validate(attrition_store, capsys)[0] == 0


def test_seal_leaves_a_changed_manifest_alone_unless_told(
    attrition_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = attrition_store / "attrition-logreg" / "1"
    _, threshold = tamper_manifest(model_dir)
    tampered = (model_dir / MANIFEST_FILENAME).read_text()

    assert cli(attrition_store, "seal") == 1
    assert "attrition-logreg@1: FAILED" in capsys.readouterr().out
    assert (model_dir / MANIFEST_FILENAME).read_text() == tampered
    assert cli(attrition_store, "seal", "--reseal") == 2

    assert cli(attrition_store, "seal", "--reseal", "attrition-logreg@1") == 0
    assert "attrition-logreg@1: resealed" in capsys.readouterr().out
    resealed = read_manifest(model_dir / MANIFEST_FILENAME)
    assert resealed.output.decision_threshold == threshold
    verify_manifest(resealed)


def test_seal_refuses_an_unknown_model(
    attrition_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(attrition_store, "seal", "nope") == 1
    assert "no model nope" in capsys.readouterr().err
