"""What every worker serves, as the database holds it: default, fallbacks, aliases, changes.

Every change runs in one transaction that first bumps ``serving_config.generation``. That
takes the row's lock (PostgreSQL) or the write lock (SQLite) before anything is read, so
two admins' changes never interleave, and changes commit in the order of their ids:
a worker that has seen change N has seen every change before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.tables import ChangeAction, ModelAlias, RegistryChange, ServingConfig, utc_now

_CONFIG_ID = 1
COMMANDS = (ChangeAction.LOAD, ChangeAction.UNLOAD, ChangeAction.RELOAD)
"""The changes that every worker carries out, rather than state that it reads."""
_ALIAS_CHANGES = (ChangeAction.ALIAS_SET, ChangeAction.ALIAS_DELETED, ChangeAction.ROLLBACK)


class NothingToRollBackError(Exception):
    """The alias has no earlier version to go back to."""


@dataclass(frozen=True, slots=True)
class StoredState:
    """The serving state at one generation, and the id of the last change made."""

    generation: int
    default_model: str | None
    fallback_models: list[str]
    aliases: dict[str, dict[str, str]]
    """Model name → alias → version."""
    last_change_id: int


def seed_state(engine: Engine, default_model: str | None, fallback_models: Sequence[str]) -> None:
    """Write the first serving state, unless there is one (later starts: the database wins)."""
    with Session(engine) as session:
        if session.get(ServingConfig, _CONFIG_ID) is not None:
            return
        session.add(
            ServingConfig(
                id=_CONFIG_ID, default_model=default_model, fallback_models=list(fallback_models)
            )
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another worker, starting too, seeded it first


def read_generation(engine: Engine) -> int:
    """The counter every change bumps: the poll's one cheap query."""
    with Session(engine) as session:
        return _config(session).generation


def read_state(engine: Engine) -> StoredState:
    with Session(engine) as session:
        # The generation first: a change committed while the rest is read only makes the
        # next poll read again.
        config = _config(session)
        aliases: dict[str, dict[str, str]] = {}
        for row in session.exec(select(ModelAlias)):
            aliases.setdefault(row.model_name, {})[row.alias] = row.version
        last_change_id = session.exec(select(func.max(RegistryChange.id))).one()
        return StoredState(
            config.generation,
            config.default_model,
            list(config.fallback_models),
            aliases,
            last_change_id or 0,
        )


def commands_after(engine: Engine, change_id: int) -> list[RegistryChange]:
    """The loads, unloads and reloads made after change ``change_id``, in order."""
    with Session(engine) as session:
        query = (
            select(RegistryChange)
            .where(col(RegistryChange.id) > change_id, col(RegistryChange.action).in_(COMMANDS))
            .order_by(col(RegistryChange.id))
        )
        return list(session.exec(query))


def set_alias(
    engine: Engine, *, model: str, alias: str, version: str, actor: str
) -> RegistryChange:
    with _changing(engine) as session:
        previous = _put_alias(session, model, alias, version, actor)
        return _record(session, ChangeAction.ALIAS_SET, actor, model, alias, previous, version)


def delete_alias(engine: Engine, *, model: str, alias: str, actor: str) -> RegistryChange | None:
    """Delete the alias; None when the model has no alias of that name."""
    with _changing(engine) as session:
        row = session.get(ModelAlias, (model, alias))
        if row is None:
            session.rollback()  # nothing changed: the generation stays, no worker reads again
            return None
        session.delete(row)
        return _record(session, ChangeAction.ALIAS_DELETED, actor, model, alias, row.version, None)


def roll_back_alias(engine: Engine, *, model: str, alias: str, actor: str) -> RegistryChange:
    """Undo the alias's last change not undone yet: it names the version it named before.

    Rollbacks undo changes one after the other, the latest first (set 1, set 2, set 3: a
    rollback goes to 2, the next to 1). ``NothingToRollBackError`` when no earlier version
    is left to go back to.
    """
    with _changing(engine) as session:
        undone = _last_change_to_undo(session, model, alias)
        if undone is None or undone.from_version is None:
            raise NothingToRollBackError(f"{model}@{alias} has no earlier version to roll back to")
        _put_alias(session, model, alias, undone.from_version, actor)
        return _record(
            session,
            ChangeAction.ROLLBACK,
            actor,
            model,
            alias,
            undone.to_version,
            undone.from_version,
        )


def set_default_model(engine: Engine, *, ref: str, actor: str) -> RegistryChange:
    with _changing(engine) as session:
        config = _config(session)
        previous, config.default_model = config.default_model, ref
        config.updated_at = utc_now()
        session.add(config)
        return _record(session, ChangeAction.DEFAULT_MODEL, actor, None, None, previous, ref)


def set_fallback_models(engine: Engine, *, refs: Sequence[str], actor: str) -> RegistryChange:
    with _changing(engine) as session:
        config = _config(session)
        previous, config.fallback_models = config.fallback_models, list(refs)
        config.updated_at = utc_now()
        session.add(config)
        return _record(
            session,
            ChangeAction.FALLBACK_MODELS,
            actor,
            None,
            None,
            ",".join(previous),
            ",".join(refs),
        )


def record_command(
    engine: Engine, *, action: ChangeAction, actor: str, model: str | None, version: str | None
) -> RegistryChange:
    """A load, unload or reload for every worker to carry out."""
    with _changing(engine) as session:
        return _record(session, action, actor, model, None, None, version)


def list_changes(
    engine: Engine, *, model: str | None, limit: int, offset: int
) -> tuple[list[RegistryChange], int]:
    """A page of changes, newest first, and the count of all: every change, or ``model``'s
    (the default model's changes included when they name it)."""
    conditions = [] if model is None else [_names_model(model)]
    with Session(engine) as session:
        page = session.exec(
            select(RegistryChange)
            .where(*conditions)
            .order_by(col(RegistryChange.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
        total = session.exec(
            select(func.count()).select_from(RegistryChange).where(*conditions)
        ).one()
        return list(page), int(total)


# --- internals -------------------------------------------------------------------------


@contextmanager
def _changing(engine: Engine) -> Iterator[Session]:
    """A session whose first statement bumps the generation (and so takes the lock)."""
    with Session(engine, expire_on_commit=False) as session:
        bumped = session.execute(
            update(ServingConfig)
            .where(col(ServingConfig.id) == _CONFIG_ID)
            .values(generation=col(ServingConfig.generation) + 1)
        )
        if bumped.rowcount != 1:  # type: ignore[attr-defined]
            raise RuntimeError("no serving state to change: seed_state runs at start")
        yield session
        session.commit()


def _config(session: Session) -> ServingConfig:
    config = session.get(ServingConfig, _CONFIG_ID)
    if config is None:
        raise RuntimeError("no serving state: seed_state runs at start")
    return config


def _put_alias(session: Session, model: str, alias: str, version: str, actor: str) -> str | None:
    """Point the alias at ``version``; the version it named before, or None."""
    row = session.get(ModelAlias, (model, alias))
    previous = row.version if row else None
    row = row or ModelAlias(model_name=model, alias=alias, version=version, updated_by=actor)
    row.version, row.updated_by, row.updated_at = version, actor, utc_now()
    session.add(row)
    return previous


def _last_change_to_undo(session: Session, model: str, alias: str) -> RegistryChange | None:
    changes = session.exec(
        select(RegistryChange)
        .where(
            col(RegistryChange.model_name) == model,
            col(RegistryChange.alias) == alias,
            col(RegistryChange.action).in_(_ALIAS_CHANGES),
        )
        .order_by(col(RegistryChange.id))
    )
    not_undone: list[RegistryChange] = []
    for change in changes:
        if change.action == ChangeAction.ROLLBACK:
            if not_undone:
                not_undone.pop()
        else:
            not_undone.append(change)
    return not_undone[-1] if not_undone else None


def _record(
    session: Session,
    action: ChangeAction,
    actor: str,
    model: str | None,
    alias: str | None,
    from_version: str | None,
    to_version: str | None,
) -> RegistryChange:
    change = RegistryChange(
        actor=actor,
        action=action,
        model_name=model,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
    )
    session.add(change)
    session.flush()  # its id, before the commit: the caller waits for that change
    return change


def _names_model(model: str) -> ColumnElement[bool]:
    default_changes = col(RegistryChange.action) == ChangeAction.DEFAULT_MODEL
    names = or_(
        *(
            condition
            for column in (col(RegistryChange.from_version), col(RegistryChange.to_version))
            for condition in (column == model, column.startswith(f"{model}@", autoescape=True))
        )
    )
    return or_(col(RegistryChange.model_name) == model, default_changes & names)
