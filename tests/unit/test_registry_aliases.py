"""Aliases in the registry: their names, how references resolve, the state workers apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.aliases import ServingState, check_alias_name
from registry.errors import (
    InvalidAliasError,
    InvalidModelRefError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from registry.factories import mock_runtimes
from registry.refs import ModelRef, parse_model_ref
from registry.registry import ModelRegistry
from tests.helpers import copy_model


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """attrition-logreg 1, 2 and 3, attrition-gbm 1 and 2 (the same task)."""
    root = tmp_path / "models"
    for version in ("1", "2", "3"):
        copy_model(root, "attrition-logreg", as_version=version)
    for version in ("1", "2"):
        copy_model(root, "attrition-gbm", as_version=version)
    return root


def registry_with(store: Path, **aliases: dict[str, str]) -> ModelRegistry:
    registry = ModelRegistry.from_dir(store, mock_runtimes, default="attrition-logreg")
    registry.apply_state(ServingState("attrition-logreg", ("attrition-gbm",), aliases))
    return registry


@pytest.mark.parametrize("alias", ["champion", "challenger", "shadow-2", "a", "blue_green"])
def test_alias_names_that_are_accepted(alias: str) -> None:
    check_alias_name(alias, ["1", "2"])


@pytest.mark.parametrize(
    ("alias", "problem"),
    [
        ("Champion", "a lowercase letter, then"),
        ("2", "a lowercase letter, then"),
        ("-x", "a lowercase letter, then"),
        ("a" * 65, "64 characters at most"),
        ("champion!", "a lowercase letter, then"),
        ("v2", "reads as a version"),
        ("v1-0", "reads as a version"),
        ("rc", "reads as a version"),  # a version of this model (below)
    ],
)
def test_alias_names_that_are_refused_say_why(alias: str, problem: str) -> None:
    with pytest.raises(InvalidAliasError, match=problem):
        check_alias_name(alias, ["1", "rc"])


def test_a_reference_takes_an_alias_where_it_takes_a_version() -> None:
    assert parse_model_ref("attrition-logreg@champion") == ModelRef("attrition-logreg", "champion")
    with pytest.raises(InvalidModelRefError, match="'name@alias'"):
        parse_model_ref("attrition-logreg@")


def test_a_bare_name_is_its_champion_else_its_latest(store: Path) -> None:
    registry = registry_with(store)
    assert registry.resolve("attrition-logreg").ref == "attrition-logreg@3"

    registry.apply_state(ServingState(aliases={"attrition-logreg": {"champion": "2"}}))

    assert registry.resolve("attrition-logreg").ref == "attrition-logreg@2"
    assert registry.resolve("attrition-logreg@champion").ref == "attrition-logreg@2"
    assert registry.resolve("attrition-logreg@3").ref == "attrition-logreg@3"
    assert registry.serving_version("attrition-logreg") == "2"
    assert registry.serving_version("attrition-gbm") == "2"


def test_an_alias_names_its_version_and_a_version_wins_over_an_alias(store: Path) -> None:
    # An alias cannot be made with a version's name (check_alias_name); one that was made
    # before that version appeared does not hide it.
    registry = registry_with(store, **{"attrition-logreg": {"challenger": "1", "3": "1"}})
    assert registry.resolve("attrition-logreg@challenger").ref == "attrition-logreg@1"
    assert registry.resolve("attrition-logreg@3").ref == "attrition-logreg@3"
    assert registry.aliases_of("attrition-logreg") == {"3": "1", "challenger": "1"}


def test_applying_a_state_drops_the_resolutions_made_under_the_old_one(store: Path) -> None:
    registry = registry_with(store)
    assert registry.resolve(None).ref == "attrition-logreg@3"  # now remembered

    changed = registry.apply_state(
        ServingState("attrition-gbm@1", ("attrition-logreg",), {"attrition-logreg": {}})
    )

    assert changed
    assert registry.resolve(None).ref == "attrition-gbm@1"
    assert (registry.default, registry.fallbacks) == ("attrition-gbm@1", ["attrition-logreg"])
    assert not registry.apply_state(registry.state), "the same state changes nothing"


def test_the_default_can_be_an_alias(store: Path) -> None:
    registry = registry_with(store, **{"attrition-gbm": {"champion": "1"}})
    registry.apply_state(
        ServingState("attrition-gbm@champion", (), {"attrition-gbm": {"champion": "1"}})
    )
    assert registry.resolve(None).ref == "attrition-gbm@1"
    assert registry.is_default("attrition-gbm")


def test_fallback_references_follow_aliases(store: Path) -> None:
    registry = registry_with(store, **{"attrition-gbm": {"champion": "1"}})
    requested = registry.resolve("attrition-logreg@1")
    candidates = [entry.ref for entry in registry.fallback_policy.candidates(requested)]
    # The fallback model's champion (and the versions before it), not its latest.
    assert candidates == ["attrition-gbm@1"]


def test_an_unknown_alias_names_the_versions_and_aliases(store: Path) -> None:
    registry = registry_with(store, **{"attrition-logreg": {"champion": "2"}})
    with pytest.raises(ModelNotFoundError) as raised:
        registry.resolve("attrition-logreg@shadow")
    assert str(raised.value) == (
        "model 'attrition-logreg' has no version or alias 'shadow' "
        "(versions: 1, 2, 3; aliases: champion)"
    )


def test_an_alias_naming_a_version_gone_from_the_store_is_unavailable(store: Path) -> None:
    registry = registry_with(store, **{"attrition-logreg": {"champion": "7"}})
    with pytest.raises(ModelUnavailableError, match="alias 'champion' of attrition-logreg names"):
        registry.resolve("attrition-logreg")


def test_a_rescan_keeps_the_state(store: Path) -> None:
    registry = registry_with(store, **{"attrition-logreg": {"champion": "1"}})
    registry.rescan()
    assert registry.resolve("attrition-logreg").ref == "attrition-logreg@1"
    assert registry.fallbacks == ["attrition-gbm"]
