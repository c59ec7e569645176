"""Unreadable manifests (issue 9, finding 11): known by model and version, never a silent 404.

A manifest that cannot be read names no task, input or artifact, so no model can be trusted
to serve in its place by task. What the registry does instead:

- a newer version unreadable: the model's readable versions serve (the latest of them
  answers the model's name); the version itself, asked for by name, is unavailable (503);
- the default model has no readable version: a request without a model name is
  unavailable (503), naming the problem, and ``default_problem`` says so for the readiness
  probe; a default that is not registered at all is still not found (404) for a request, and
  a problem for readiness too.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from registry.errors import ModelNotFoundError, ModelUnavailableError
from registry.factories import mock_runtimes
from registry.registry import ModelRegistry
from registry.store import UnreadableManifest, scan_store
from tests.factories import truncate_manifest
from tests.helpers import copy_model

MANIFEST = "manifest.json"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """logreg versions 1 and 2, gbm 1 (the same task)."""
    root = tmp_path / "models"
    copy_model(root, "attrition-logreg")
    copy_model(root, "attrition-logreg", as_version="2")
    copy_model(root, "attrition-gbm")
    return root


def build(store: Path, default: str | None = "attrition-logreg") -> ModelRegistry:
    return ModelRegistry.from_dir(
        store, mock_runtimes, default=default, fallbacks=["attrition-gbm"]
    )


async def served_ref(registry: ModelRegistry, ref: str | None) -> str:
    async with registry.serving(registry.resolve(ref)) as serving:
        return serving.manifest.ref


# --- the scan --------------------------------------------------------------------------


def test_the_scan_keeps_which_version_each_unreadable_manifest_is(store: Path) -> None:
    truncate_manifest(store / "attrition-logreg" / "2")

    scan = scan_store(store)

    assert [stored.manifest.ref for stored in scan.models] == [
        "attrition-gbm@1",
        "attrition-logreg@1",
    ]
    [unreadable] = scan.unreadable
    assert (unreadable.name, unreadable.version) == ("attrition-logreg", "2")
    assert unreadable.path == store / "attrition-logreg" / "2" / MANIFEST
    assert unreadable.error  # the parser's own words
    assert scan.problems == [f"{unreadable.path}: {unreadable.error}"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "Expecting value"),
        ("{not json", "Expecting property name"),
        ('{"name": "attrition-logreg"}', "Field required"),
    ],
)
def test_every_kind_of_unreadable_manifest_is_kept(store: Path, content: str, words: str) -> None:
    (store / "attrition-logreg" / "2" / MANIFEST).write_text(content)

    [unreadable] = scan_store(store).unreadable

    assert (unreadable.name, unreadable.version) == ("attrition-logreg", "2")
    assert words in unreadable.error


def test_a_manifest_in_the_wrong_folder_is_unreadable_there(store: Path) -> None:
    path = store / "attrition-logreg" / "2" / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["version"] = "3"
    path.write_text(json.dumps(manifest))

    [unreadable] = scan_store(store).unreadable

    assert (unreadable.name, unreadable.version) == ("attrition-logreg", "2")
    assert "manifest says attrition-logreg@3" in unreadable.error


def test_a_missing_store_is_a_problem_of_no_model_version(tmp_path: Path) -> None:
    scan = scan_store(tmp_path / "nowhere")
    assert scan.unreadable == [] and "does not exist" in scan.problems[0]


# --- (a) a newer version unreadable --------------------------------------------------------


def test_the_older_readable_version_serves_the_models_name(store: Path) -> None:
    truncate_manifest(store / "attrition-logreg" / "2")
    registry = build(store)

    assert asyncio.run(served_ref(registry, None)) == "attrition-logreg@1"
    assert asyncio.run(served_ref(registry, "attrition-logreg")) == "attrition-logreg@1"
    assert registry.default_problem() is None
    assert [(u.name, u.version) for u in registry.unreadable] == [("attrition-logreg", "2")]


def test_the_unreadable_version_asked_for_is_unavailable_naming_why(store: Path) -> None:
    truncate_manifest(store / "attrition-logreg" / "2")
    registry = build(store)

    with pytest.raises(ModelUnavailableError) as error:
        registry.resolve("attrition-logreg@2")

    message = str(error.value)
    assert message.startswith("attrition-logreg@2 cannot be read: ")
    assert "fix its manifest" in message
    assert "versions that can serve: 1" in message


def test_unknown_versions_are_still_not_found(store: Path) -> None:
    truncate_manifest(store / "attrition-logreg" / "2")
    with pytest.raises(ModelNotFoundError, match="no version '9'"):
        build(store).resolve("attrition-logreg@9")


# --- (b) the default model unreadable ------------------------------------------------------


@pytest.fixture
def unreadable_default(store: Path) -> ModelRegistry:
    """The default model's every version unreadable; its fallback model fine."""
    truncate_manifest(store / "attrition-logreg" / "1")
    truncate_manifest(store / "attrition-logreg" / "2")
    return build(store)


def test_a_request_without_a_name_is_unavailable_not_not_found(
    unreadable_default: ModelRegistry,
) -> None:
    with pytest.raises(ModelUnavailableError) as error:
        unreadable_default.resolve(None)

    message = str(error.value)
    assert message.startswith("the default model attrition-logreg cannot be read: ")
    assert message.endswith("; name a model or fix its manifest")


def test_the_default_model_asked_for_by_name_is_unavailable(
    unreadable_default: ModelRegistry,
) -> None:
    with pytest.raises(ModelUnavailableError, match="attrition-logreg cannot be read"):
        unreadable_default.resolve("attrition-logreg")


def test_other_models_still_serve(unreadable_default: ModelRegistry) -> None:
    assert asyncio.run(served_ref(unreadable_default, "attrition-gbm")) == "attrition-gbm@1"


def test_the_default_problem_is_what_readiness_reports(unreadable_default: ModelRegistry) -> None:
    problem = unreadable_default.default_problem()

    assert problem is not None
    assert problem.startswith("the default model attrition-logreg cannot be read: ")


def test_a_pinned_default_whose_version_is_unreadable(store: Path) -> None:
    truncate_manifest(store / "attrition-logreg" / "2")
    registry = build(store, default="attrition-logreg@2")

    problem = registry.default_problem()

    assert problem is not None
    assert problem.startswith("the default model attrition-logreg@2 cannot be read: ")
    with pytest.raises(ModelUnavailableError):
        registry.resolve(None)


def test_a_default_that_is_not_registered_is_a_problem_too(store: Path) -> None:
    registry = build(store, default="attrition-typo")

    problem = registry.default_problem()

    assert problem == (
        "the default model attrition-typo cannot serve: "
        "model 'attrition-typo' is not registered; fix DEFAULT_MODEL"
    )
    with pytest.raises(ModelNotFoundError):  # as before: only readiness changes
        registry.resolve(None)


def test_no_default_configured_is_no_problem(store: Path) -> None:
    registry = build(store, default=None)

    assert registry.default_problem() is None
    with pytest.raises(ModelNotFoundError, match="no DEFAULT_MODEL configured"):
        registry.resolve(None)


def test_a_rescan_after_the_fix_serves_the_default_again(store: Path) -> None:
    truncate_manifest(store / "attrition-logreg" / "1")
    truncate_manifest(store / "attrition-logreg" / "2")
    registry = build(store)
    assert registry.default_problem() is not None
    copy_model(store.parent / "fixed", "attrition-logreg")
    (store / "attrition-logreg" / "1" / MANIFEST).write_text(
        (store.parent / "fixed" / "attrition-logreg" / "1" / MANIFEST).read_text()
    )

    registry.rescan()

    assert registry.default_problem() is None
    assert registry.unreadable == [
        UnreadableManifest(
            "attrition-logreg",
            "2",
            store / "attrition-logreg" / "2" / MANIFEST,
            registry.unreadable[0].error,
        )
    ]
    assert asyncio.run(served_ref(registry, None)) == "attrition-logreg@1"
