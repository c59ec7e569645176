"""Users of the API: stored with a password hash (hashing itself is the caller's job)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.tables import Role, User


class UserExistsError(Exception):
    """A user with this name already exists."""


def get_user(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(col(User.username) == username)).first()


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.username))).all())


def create_user(session: Session, username: str, hashed_password: str, role: Role) -> User:
    user = User(username=username, hashed_password=hashed_password, role=role)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise UserExistsError(f"user '{username}' already exists") from None
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
    """Change what is given; a disabled user can no longer log in or use a token."""
    if hashed_password is not None:
        user.hashed_password = hashed_password
    if role is not None:
        user.role = role
    if is_active is not None:
        user.is_active = is_active
    session.add(user)
    session.commit()
    session.refresh(user)
    return user
