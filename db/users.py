"""Users of the API: stored with a password hash (hashing itself is the caller's job).

Names are case-insensitive: stored in lowercase, and looked up by their lowercase form.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.tables import Role, User


class UserExistsError(Exception):
    """A user with this name already exists."""


def normalise_username(username: str) -> str:
    """The stored form of a name: ``Admin`` and ``admin`` are one user."""
    return username.lower()


def get_user(session: Session, username: str) -> User | None:
    """The user of this name, whatever its case.

    Two users that differ only by case, made before names were case-insensitive, are kept
    (the migration logs them): each is still found by its exact name.
    """
    names = {username, normalise_username(username)}
    users = session.exec(select(User).where(col(User.username).in_(names))).all()
    if not users:
        return None
    return next((user for user in users if user.username == username), users[0])


def any_user_exists(session: Session) -> bool:
    return session.exec(select(User.id).limit(1)).first() is not None


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.username))).all())


def create_user(session: Session, username: str, hashed_password: str, role: Role) -> User:
    name = normalise_username(username)
    user = User(username=name, hashed_password=hashed_password, role=role)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise UserExistsError(f"user '{name}' already exists") from None
    session.refresh(user)
    return user


def update_user(
    session: Session,
    user: User,
    *,
    hashed_password: str | None = None,
    role: Role | None = None,
    is_active: bool | None = None,
) -> User:
    """Change what is given; a new password or a disabling revokes the user's tokens."""
    if hashed_password is not None:
        user.hashed_password = hashed_password
    if role is not None:
        user.role = role
    if is_active is not None:
        user.is_active = is_active
    if hashed_password is not None or is_active is False:
        user.token_version += 1
    session.add(user)
    session.commit()
    session.refresh(user)
    return user
