"""Password hashing, tokens and the start-up admin."""

from __future__ import annotations

from collections.abc import Iterator

import jwt
import pytest
from sqlmodel import Session

from api.security import create_access_token, ensure_admin, hash_password, password_matches
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.tables import Role
from db.users import create_user, get_user


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_passwords_are_hashed_and_checked(session: Session) -> None:
    create_user(session, "ann", hash_password("correct horse"), Role.VIEWER)
    stored = get_user(session, "ann")
    assert stored is not None and "correct horse" not in stored.hashed_password
    assert password_matches(get_user(session, "ann"), "correct horse")
    assert not password_matches(get_user(session, "ann"), "wrong horse")
    assert not password_matches(get_user(session, "nobody"), "correct horse")


def test_ensure_admin_creates_then_resets_password_and_role(session: Session) -> None:
    ensure_admin(session, "boss", "first-password")
    assert password_matches(get_user(session, "boss"), "first-password")
    ensure_admin(session, "boss", "second-password")
    assert not password_matches(get_user(session, "boss"), "first-password")
    create_user(session, "demoted", hash_password("pw-123456"), Role.VIEWER)
    ensure_admin(session, "demoted", "pw-123456")
    user = get_user(session, "demoted")
    assert user is not None and user.role == Role.ADMIN


def test_token_names_the_user_and_role(session: Session) -> None:
    user = create_user(session, "tok", hash_password("pw-123456"), Role.ADMIN)
    claims = jwt.decode(create_access_token(user, "k" * 32, 5), "k" * 32, algorithms=["HS256"])
    assert (claims["sub"], claims["role"]) == ("tok", "admin")
    assert claims["exp"] - claims["iat"] == 300
