"""Authentication: hashed passwords, signed JWTs (OAuth2 password flow), roles.

Logins are throttled (``api.throttle``) and their argon2 work runs on a small executor of
its own (``PasswordHasher``), so that a flood of guesses neither goes on unchecked nor slows
down the other requests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from pwdlib import PasswordHash
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, SettingsDep
from api.errors import ForbiddenError, ServiceUnavailableError, UnauthorizedError
from api.settings import Settings
from api.throttle import Clock, LoginThrottle
from db.tables import Role, User
from db.users import UserExistsError, create_user, get_user, normalise_username, update_user

logger = logging.getLogger(__name__)

# PyJWT is imported where a token is made or read, not at start: it imports cryptography
# when that is installed (MLflow brings it), 70 ms of every start.
_ALGORITHM = "HS256"
# Every token has them; PyJWT is told to require "exp" only, so that an expired token says
# so, whatever else it lacks (PyJWT checks the required claims before the expiry).
_REQUIRED_CLAIMS = ("exp", "iat", "sub", "ver")
_password_hash = PasswordHash.recommended()

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)

P = ParamSpec("P")
T = TypeVar("T")


def hash_password(password: str) -> str:
    return _password_hash.hash(password)


@functools.cache
def _unknown_user_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``user`` is active and has this password (slow: argon2)."""
    if user is None:
        # Check anyway, so that timing does not tell unknown names from wrong passwords.
        _password_hash.verify(password, _unknown_user_hash())
        return False
    return _password_hash.verify(password, user.hashed_password) and user.is_active


class PasswordHasher:
    """Runs password hashing on ``threads`` threads of its own, ``queue`` more waiting at most.

    argon2 takes a core for a good fraction of a second by design: on the thread pool the
    other routes share, concurrent logins took all the cores from the predictions. Here they
    take ``threads`` of them, and a login beyond the queue is answered 503 at once.
    """

    def __init__(self, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="password-hash")
        self._capacity = threads + queue
        self._pending = 0
        self._lock = threading.Lock()

    def submit(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``function``; ``ServiceUnavailableError`` when the queue is full."""
        with self._lock:
            if self._pending >= self._capacity:
                raise ServiceUnavailableError("too many password checks in progress: retry shortly")
            self._pending += 1
        future = self._executor.submit(function, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.wrap_future(self.submit(function, *args, **kwargs))

    def run_blocking(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``run`` for sync routes (already off the event loop)."""
        return self.submit(function, *args, **kwargs).result()

    def close(self) -> None:
        """Stop the threads; checks still queued are cancelled (their logins fail)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _done(self, _future: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1


@dataclass
class LoginGuard:
    """What an app's logins go through: the throttle, then the password hasher."""

    throttle: LoginThrottle
    hasher: PasswordHasher

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = time.monotonic) -> LoginGuard:
        throttle = LoginThrottle(
            per_user=settings.login_failures_per_user,
            per_client=settings.login_failures_per_client,
            window=settings.login_window_seconds,
            clock=clock,
        )
        hasher = PasswordHasher(settings.password_hash_threads, settings.password_hash_queue)
        return cls(throttle, hasher)

    def close(self) -> None:
        self.hasher.close()


def get_login_guard(request: Request) -> LoginGuard:
    guard: LoginGuard = request.app.state.login_guard
    return guard


LoginGuardDep = Annotated[LoginGuard, Depends(get_login_guard)]


def client_address(request: Request) -> str:
    """The client's address (behind a proxy, the one uvicorn's proxy headers give)."""
    return request.client.host if request.client else "unknown"


async def log_in(
    guard: LoginGuard, session: Session, username: str, password: str, client: str
) -> User | None:
    """The user with this name and password, else None; 429 when throttled, 503 when busy."""
    attempt = guard.throttle.start(normalise_username(username), client)
    try:
        user = await run_in_threadpool(get_user, session, username)
        valid = await guard.hasher.run(password_matches, user, password)
    except BaseException:
        attempt.cancel()  # neither right nor wrong: the database or the hasher failed
        raise
    if not valid:
        return None
    attempt.succeeded()
    return user


def create_access_token(user: User, secret: str, minutes: int) -> str:
    import jwt

    now = datetime.now(UTC)
    expires = now + timedelta(minutes=minutes)
    claims = {
        "sub": user.username,
        "role": user.role,
        "ver": user.token_version,
        "iat": now,
        "exp": expires,
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def ensure_admin(session: Session, username: str, password: str) -> None:
    """Create the admin named by ADMIN_USERNAME, or reset its password and role.

    Several workers run this at the same start; the one that loses the race to create
    the user finds it made by another and goes on.
    """
    user = get_user(session, username)
    if user is None:
        try:
            user = create_user(session, username, hash_password(password), Role.ADMIN)
            logger.info("Created admin user %r", user.username)
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
        logger.info("Reset password and role of admin user %r", user.username)


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
    claims = decode_token(token, settings.jwt_secret)
    user = get_user(session, str(claims["sub"]))
    if user is None or not user.is_active:
        raise UnauthorizedError("the token's user does not exist or is disabled")
    if claims["ver"] != user.token_version:
        raise UnauthorizedError(
            "token revoked (password changed or user disabled since): "
            "log in again at POST /auth/token"
        )
    return user


def decode_token(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token signed with ``secret``; 401 when it is not valid or expired."""
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], options={"require": ["exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("token expired: log in again at POST /auth/token") from None
    except jwt.InvalidSignatureError:
        raise UnauthorizedError(
            "invalid token: not signed by this server's key (without SECRET_KEY, a new key "
            "is made at each start): log in again at POST /auth/token"
        ) from None
    except jwt.DecodeError:
        # `jq -r .access_token` of a failed login's answer is the string "null".
        raise UnauthorizedError(
            "invalid token: not a JWT; did the login fail? POST /auth/token answers "
            '{"access_token": ...} for a right username and password'
        ) from None
    except jwt.InvalidTokenError:
        raise UnauthorizedError("invalid token") from None
    missing = [claim for claim in _REQUIRED_CLAIMS if claim not in claims]
    if missing:
        raise UnauthorizedError(f"invalid token: no {', '.join(missing)} claim")
    return claims


def require_admin(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != Role.ADMIN:
        raise ForbiddenError(f"user '{user.username}' is a {user.role}; this needs an admin")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(require_admin)]
