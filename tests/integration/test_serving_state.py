"""The serving state in the database (SQLite and PostgreSQL): seed, aliases, rollback, history."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from db import serving_state
from db.tables import ChangeAction

MODEL = "attrition-logreg"


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    serving_state.seed_state(engine, MODEL, ["attrition-gbm"])
    return engine


def champion(engine: Engine) -> str | None:
    return serving_state.read_state(engine).aliases.get(MODEL, {}).get("champion")


def set_champion(engine: Engine, version: str) -> None:
    serving_state.set_alias(engine, model=MODEL, alias="champion", version=version, actor="ann")


def roll_back(engine: Engine) -> None:
    serving_state.roll_back_alias(engine, model=MODEL, alias="champion", actor="bob")


def test_the_settings_seed_a_fresh_database_only(seeded: Engine) -> None:
    serving_state.set_default_model(seeded, ref="attrition-gbm", actor="ann")
    serving_state.seed_state(seeded, "something-else", [])  # a later start, other settings

    state = serving_state.read_state(seeded)

    assert (state.default_model, state.fallback_models) == ("attrition-gbm", ["attrition-gbm"])
    assert (state.generation, state.last_change_id) == (1, 1)


def test_every_change_bumps_the_generation(seeded: Engine) -> None:
    before = serving_state.read_generation(seeded)
    set_champion(seeded, "1")
    serving_state.set_fallback_models(seeded, refs=["attrition-gbm@1"], actor="ann")
    serving_state.record_command(
        seeded, action=ChangeAction.LOAD, actor="ann", model=MODEL, version="1"
    )
    assert serving_state.read_generation(seeded) == before + 3
    assert serving_state.read_state(seeded).fallback_models == ["attrition-gbm@1"]


def test_rollbacks_undo_the_champions_changes_latest_first(seeded: Engine) -> None:
    for version in ("1", "2", "3"):
        set_champion(seeded, version)

    roll_back(seeded)
    assert champion(seeded) == "2"
    roll_back(seeded)
    assert champion(seeded) == "1"
    with pytest.raises(serving_state.NothingToRollBackError, match="no earlier version"):
        roll_back(seeded)
    assert champion(seeded) == "1"


def test_a_rollback_after_a_new_version_goes_back_to_the_one_before_it(seeded: Engine) -> None:
    set_champion(seeded, "1")
    set_champion(seeded, "2")
    roll_back(seeded)  # 1
    set_champion(seeded, "3")
    roll_back(seeded)
    assert champion(seeded) == "1"


def test_a_rollback_undoes_a_deletion(seeded: Engine) -> None:
    set_champion(seeded, "2")
    deleted = serving_state.delete_alias(seeded, model=MODEL, alias="champion", actor="ann")
    assert deleted is not None and deleted.from_version == "2"
    assert champion(seeded) is None
    roll_back(seeded)
    assert champion(seeded) == "2"


def test_deleting_an_unknown_alias_changes_nothing(seeded: Engine) -> None:
    before = serving_state.read_generation(seeded)
    assert serving_state.delete_alias(seeded, model=MODEL, alias="nope", actor="ann") is None
    assert serving_state.read_generation(seeded) == before


def test_the_history_of_a_model_has_its_changes_and_the_defaults_naming_it(
    seeded: Engine,
) -> None:
    set_champion(seeded, "1")
    serving_state.set_default_model(seeded, ref=f"{MODEL}@champion", actor="ann")
    serving_state.set_default_model(seeded, ref="attrition-gbm", actor="ann")
    serving_state.set_alias(seeded, model="attrition-gbm", alias="x", version="1", actor="ann")
    serving_state.set_default_model(seeded, ref="attrition_logreg", actor="ann")  # not MODEL

    changes, total = serving_state.list_changes(seeded, model=MODEL, limit=10, offset=0)

    assert total == 3
    assert [(c.action, c.from_version, c.to_version) for c in changes] == [
        (ChangeAction.DEFAULT_MODEL, f"{MODEL}@champion", "attrition-gbm"),
        (ChangeAction.DEFAULT_MODEL, MODEL, f"{MODEL}@champion"),
        (ChangeAction.ALIAS_SET, None, "1"),
    ]
    assert changes[-1].actor == "ann" and changes[-1].changed_at is not None
    _, everything = serving_state.list_changes(seeded, model=None, limit=1, offset=0)
    assert everything == 5


def test_commands_come_in_order_and_only_the_new_ones(seeded: Engine) -> None:
    set_champion(seeded, "1")
    load = serving_state.record_command(
        seeded, action=ChangeAction.LOAD, actor="ann", model=MODEL, version="1"
    )
    reload = serving_state.record_command(
        seeded, action=ChangeAction.RELOAD, actor="ann", model=None, version=None
    )
    assert load.id is not None
    commands = serving_state.commands_after(seeded, 0)
    assert [command.action for command in commands] == [ChangeAction.LOAD, ChangeAction.RELOAD]
    assert [command.id for command in serving_state.commands_after(seeded, load.id)] == [reload.id]
