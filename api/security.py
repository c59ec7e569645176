"""Authentication: hashed passwords, signed JWTs (OAuth2 password flow), roles."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from pwdlib import PasswordHash
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep
from api.errors import ForbiddenError, UnauthorizedError
from db.tables import Role, User
from db.users import UserExistsError, create_user, get_user, update_user

logger = logging.getLogger(__name__)

_ALGORITHM = "HS256"
_password_hash = PasswordHash.recommended()

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def hash_password(password: str) -> str:
    return _password_hash.hash(password)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, else None."""
    user = get_user(session, username)
    if user is None:
        # Hash anyway, so that timing does not tell unknown names from wrong passwords.
        _password_hash.hash(password)
        return None
    if not _password_hash.verify(password, user.hashed_password) or not user.is_active:
        return None
    return user


def create_access_token(user: User, secret: str, minutes: int) -> str:
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=minutes)
    claims = {"sub": user.username, "role": user.role, "iat": now, "exp": expires}
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def ensure_admin(session: Session, username: str, password: str) -> None:
    """Create the admin named by ADMIN_USERNAME, or reset its password and role.

    Several workers run this at the same start; the one that loses the race to create
    the user finds it made by another and goes on.
    """
    user = get_user(session, username)
    if user is None:
        try:
            create_user(session, username, hash_password(password), Role.ADMIN)
            logger.info("Created admin user %r", username)
            return
        except UserExistsError:
            user = get_user(session, username)
    if user is not None and (
        user.role != Role.ADMIN or not _password_hash.verify(password, user.hashed_password)
    ):
        update_user(
            session,
            user,
            hashed_password=hash_password(password),
            role=Role.ADMIN,
            is_active=True,
        )
        logger.info("Reset password and role of admin user %r", username)


def current_user(
    token: Annotated[str | None, Depends(oauth2_scheme)],
    session: SessionDep,
    settings: SettingsDep,
) -> User:
    """The user a bearer token names; 401 when there is none or it is not valid."""
    if token is None:
        raise UnauthorizedError(
            "authentication required: send 'Authorization: Bearer <token>' "
            "(get one from POST /auth/token)"
        )
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[_ALGORITHM])
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("token expired: log in again at POST /auth/token") from None
    except jwt.InvalidTokenError:
        raise UnauthorizedError("invalid token") from None
    user = get_user(session, str(claims.get("sub", "")))
    if user is None or not user.is_active:
        raise UnauthorizedError("the token's user does not exist or is disabled")
    return user


def require_admin(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != Role.ADMIN:
        raise ForbiddenError(f"user '{user.username}' is a {user.role}; this needs an admin")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(require_admin)]
